"""T5 and decoders answering in words: the template, label words, padding, and whole runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BloomConfig,
    GPT2Config,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
)

from petscale.answers import answerer_for
from petscale.answers.causal import CausalAnswerer, answer_logprobs, left_align
from petscale.answers.template import Template, TextEncoder, special_ids
from petscale.answers.words import WordAnswerer
from petscale.budget import attach_method
from petscale.errors import UserError
from petscale.features import encode_splits
from petscale.tasks.base import Example, Splits, Task, TaskSpec
from petscale.train import TrainConfig, evaluate, train
from petscale.zoo import assets
from petscale.zoo.structure import structure_of
from tiny import QA, SENTIMENT

CPU = torch.device("cpu")
VOCAB = 30522  # bert-base-uncased, MiniLM's tokenizer


def tiny(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "t5":
        config = T5Config(
            vocab_size=VOCAB,
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_heads=2,
            decoder_start_token_id=0,
            dropout_rate=0.0,
        )
        return AutoModelForSeq2SeqLM.from_config(config)
    if kind == "gpt2":
        config = GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=256,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    else:
        config = BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=2)  # no dropout
    return AutoModelForCausalLM.from_config(config)


ANSWER = {"t5": "seq2seq", "gpt2": "causal", "bloom": "causal"}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run faster on one thread than on several shared ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(assets.model_folder("minilm-l6"))


def sentiment_splits() -> Splits:
    texts = [
        ("a wonderful warm film", 1),
        ("dull and far too long", 0),
        ("the best acting this year", 1),
        ("a tedious waste of time", 0),
    ]
    train_split = [Example(text=t, label=y) for t, y in texts]
    return {"train": train_split, "dev": train_split}


def qa_splits() -> Splits:
    rows = [
        ("who wrote hamlet", "william shakespeare"),
        ("capital of france", "paris"),
        ("largest planet", "jupiter"),
        ("author of emma", "jane austen"),
    ]
    examples = [Example(text=q, target=a, references=[a, a.split()[-1]]) for q, a in rows]
    return {"train": examples, "dev": examples}


# --- the template -------------------------------------------------------------------------


def test_source_is_templated_and_truncation_spares_the_template(tokenizer) -> None:
    encoder = TextEncoder(tokenizer, 64, Template(), source_suffix=True, answer_space="")
    ids = encoder.source(Example(text="a fine film"))
    assert tokenizer.decode(ids) == "[CLS] input : a fine film output : [SEP]"
    short = TextEncoder(tokenizer, 9, Template(), source_suffix=True, answer_space="")
    cut = short.source(Example(text="one two three four five six"))
    assert len(cut) == 9 and tokenizer.decode(cut) == "[CLS] input : one two three output : [SEP]"


def test_pairs_are_cut_longest_first_and_decoders_drop_trailing_specials(tokenizer) -> None:
    encoder = TextEncoder(tokenizer, 14, Template(), source_suffix=False, answer_space=" ")
    ids = encoder.source(Example(text="a b c d e f g", text_pair="x y"))
    assert tokenizer.decode(ids) == "[CLS] input : a b c d e f [SEP] x y output :"
    assert special_ids(tokenizer) == ([101], [102])
    with pytest.raises(UserError, match="no room"):
        TextEncoder(tokenizer, 5, Template(), True, "").source(Example(text="x"))


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-like tokenizer: byte-level BPE, an end-of-text token, no pad token."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    text = ["Input: a wonderful film Output: positive", "Input: dull film Output: negative"]
    bpe.train_from_iterator(text * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")


def test_byte_level_prompt_and_word_tokenise_as_running_text() -> None:
    bpe = byte_level_tokenizer()
    answerer = answerer_for("causal", SENTIMENT, bpe, 32)
    features = answerer.encode(Example(text="a wonderful film", label=1))
    whole = bpe("Input: a wonderful film Output: positive")["input_ids"]
    assert features["input_ids"] + features["target_ids"] == whole
    assert answerer.pad_id == bpe.eos_token_id  # no pad token: EOS pads
    assert answerer.word_texts == ["negative", "positive"]


def test_label_words_end_in_eos_for_t5_and_only_on_a_prefix_clash_for_decoders(
    tokenizer,
) -> None:
    sep = tokenizer.sep_token_id  # the bert vocabulary has no EOS: SEP ends an answer
    t5 = answerer_for("seq2seq", SENTIMENT, tokenizer, 32)
    assert all(ids[-1] == sep for ids in t5.word_ids)
    gpt = answerer_for("causal", SENTIMENT, tokenizer, 32)
    assert all(sep not in ids for ids in gpt.word_ids)
    clash = TaskSpec("c", "nli", "classification", ("a", "b"), ("not", "not sure"))
    assert all(ids[-1] == sep for ids in answerer_for("causal", clash, tokenizer, 32).word_ids)
    alike = TaskSpec("d", "nli", "classification", ("a", "b"), ("Yes", "yes"))
    with pytest.raises(UserError, match="alike"):
        answerer_for("causal", alike, tokenizer, 32)
    with pytest.raises(UserError, match="classification head"):
        answerer_for("classify", QA, tokenizer, 32)


def test_generated_ids_map_to_classes_or_minus_one(tokenizer) -> None:
    answerer = answerer_for("seq2seq", SENTIMENT, tokenizer, 32)
    rows = [answerer.word_ids[1] + [0], answerer.word_ids[0][:-1] + [0, 0], [2054, 102, 0]]
    assert answerer.from_generated(torch.tensor(rows)) == [1, 0, -1]
    text = answerer_for("seq2seq", QA, tokenizer, 32)
    ids = tokenizer("Jane Austen", add_special_tokens=False)["input_ids"]
    assert text.from_generated(torch.tensor([ids + [102, 2054]])) == ["jane austen"]


# --- decoder positions and padding -----------------------------------------------------------


def test_left_align_moves_padding_to_the_left() -> None:
    ids = torch.tensor([[5, 6, 7], [8, 0, 0]])
    attention = torch.tensor([[1, 1, 1], [1, 0, 0]])
    left, left_mask = left_align(ids, attention)
    assert left.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left_mask.tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("method", [None, "prompt"])
@pytest.mark.parametrize("kind", ["gpt2", "bloom"])
def test_decoder_scores_and_generation_do_not_depend_on_padding(
    tokenizer, kind: str, method: str | None
) -> None:
    model = tiny(kind)
    if method:  # soft tokens go before the padding: positions must still line up
        attach_method(model, method, {"length": 3}, structure_of(model))
    model.eval()
    examples = [Example(text="short"), Example(text="a much longer input than the other one")]
    for spec in (SENTIMENT, QA):
        answerer = answerer_for("causal", spec, tokenizer, 32, max_new_tokens=5)
        features = [{**answerer.encode({**ex, "label": 0, "target": "x"})} for ex in examples]
        with torch.inference_mode():
            together = answerer.collate(features)
            alone = [answerer.collate([f]) for f in features]
            if spec is SENTIMENT:
                batched = answerer.scores(model, together)
                single = torch.cat([answerer.scores(model, b) for b in alone])
                torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
            else:
                single = [answerer.predict(model, b)[0] for b in alone]
                assert answerer.predict(model, together) == single


@pytest.mark.parametrize("kind", ["gpt2", "bloom"])
def test_decoder_loss_and_scores_use_the_same_answer_log_probs(tokenizer, kind: str) -> None:
    model = tiny(kind).eval()
    answerer = answerer_for("causal", SENTIMENT, tokenizer, 32)
    examples = sentiment_splits()["train"]
    batch = answerer.collate([answerer.encode(ex) for ex in examples])
    logp, rows = answer_logprobs(
        model, batch["input_ids"], batch["attention_mask"], batch["labels"]
    )
    torch.testing.assert_close(answerer.loss(model, batch), -logp.mean())
    # the gold class's score is the summed log-prob of its word in the training batch
    gold = logp.new_zeros(len(examples)).index_add(0, rows, logp)
    scores = answerer.scores(model, batch)
    torch.testing.assert_close(scores[range(len(examples)), [ex["label"] for ex in examples]], gold)


# --- whole runs: train, evaluate, score ---------------------------------------------------


def run(
    kind: str, spec: TaskSpec, splits: Splits, tokenizer, steps: int, lr: float
) -> tuple[list[float], float, WordAnswerer, torch.nn.Module]:
    model = tiny(kind)
    answerer = answerer_for(ANSWER[kind], spec, tokenizer, 32, max_new_tokens=8)
    task = Task(spec=spec, loader=lambda: splits)
    features = encode_splits(answerer, tokenizer, task.splits())
    references = [answerer.reference(ex) for ex in splits["dev"]]

    def dev() -> float:
        return evaluate(model, answerer, features["dev"], references, spec.metric, 3, CPU)

    config = TrainConfig(steps=steps, batch_size=4, lr=lr, warmup_ratio=0, schedule="constant")
    params = list(model.parameters())
    accelerator = Accelerator(cpu=True)
    result = train(model, params, answerer, features["train"], dev, config, accelerator, False)
    return result.losses, result.curve[-1][1], answerer, model


@pytest.mark.parametrize("kind", ["t5", "gpt2", "bloom"])
def test_classification_in_words_learns_and_predicts_class_indices(tokenizer, kind) -> None:
    losses, accuracy, answerer, model = run(
        kind, SENTIMENT, sentiment_splits(), tokenizer, 40, 1e-2
    )
    assert losses[-1] < 0.2 * losses[0]
    assert accuracy == 1.0  # the overfit training set, predicted through generation/scoring
    batch = answerer.collate([answerer.encode(ex) for ex in sentiment_splits()["dev"]])
    with torch.inference_mode():
        predictions = answerer.predict(model.eval(), batch)
    assert predictions == [1, 0, 1, 0]


@pytest.mark.parametrize("kind", ["t5", "gpt2", "bloom"])
def test_generation_learns_the_answers_and_scores_token_f1(tokenizer, kind) -> None:
    losses, f1, answerer, model = run(kind, QA, qa_splits(), tokenizer, 60, 1e-2)
    assert losses[-1] < 0.2 * losses[0]
    assert f1 == 1.0
    assert answerer.reference(qa_splits()["dev"][0]) == ["william shakespeare", "shakespeare"]


def test_rouge_l_scores_generated_summaries(tokenizer) -> None:
    spec = TaskSpec(name="toy-sum", type="summarization", kind="generation", metrics=("rouge_l",))
    examples = [
        Example(text=f"{a} and {b} met at noon", target=f"{a} met {b}")
        for a, b in (("amy", "bob"), ("cal", "dan"))
    ]
    splits = {"train": examples, "dev": examples}
    losses, rouge, _, _ = run("t5", spec, splits, tokenizer, 40, 1e-2)
    assert losses[-1] < losses[0] and 0.0 <= rouge <= 1.0


def test_features_cache_round_trips_word_answers(tokenizer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PETSCALE_CACHE", str(tmp_path))
    answerer = answerer_for("causal", QA, tokenizer, 32)
    first = encode_splits(answerer, tokenizer, qa_splits())
    assert list(tmp_path.glob("features/*.safetensors"))
    from petscale import features as cache

    cache._memory.clear()
    assert encode_splits(answerer, tokenizer, qa_splits()) == first
    assert isinstance(answerer, CausalAnswerer)


@pytest.mark.parametrize("kind", ["t5", "gpt2", "bloom"])
def test_trial_runs_word_answers_from_a_local_model_folder(
    kind: str, tokenizer, toy_task: Path, tmp_path: Path
) -> None:
    import petscale

    tiny(kind).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    report = petscale.tune(
        model=str(tmp_path), task=str(toy_task), method="full", steps=20, batch_size=16,
        lr=1e-3, max_length=32,
    )  # fmt: skip
    assert report["head_params"] == 0 and report["random_guess"] == 0.5
    assert 0.0 <= report["dev_score"] <= 1.0 and report["test_score"] is not None
