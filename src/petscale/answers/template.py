"""The study's prompt, "Input: {x} Output: ", tokenised the same way for T5 and decoders.

The source is tokenised piece by piece (prefix, text, separator, text pair, suffix) so that
truncation cuts the example's text and never the template: the model always sees "Output:".
The trailing space of "Output: " belongs to the answer: decoders read " positive" (one
byte-level BPE word, as GPT-2 and BLOOM tokenise running text); T5 reads "positive" on the
decoder side, where SentencePiece adds its own word boundary.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from transformers import PreTrainedTokenizerBase

from petscale.errors import UserError
from petscale.tasks.base import Example


@dataclass(frozen=True)
class Template:
    prefix: str = "Input:"
    suffix: str = " Output:"
    pair_separator: str = " [SEP]"  # between text and text_pair; BERT's vocab reads it as [SEP]

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def eos_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id that ends an answer: EOS, else SEP (the bert-base-uncased vocab has no EOS)."""
    for token_id in (tokenizer.eos_token_id, tokenizer.sep_token_id):
        if token_id is not None:
            return token_id
    raise UserError("the tokenizer has neither an EOS nor a SEP token to end an answer with")


def special_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special ids the tokenizer puts before and after a text ([CLS] / [SEP], <bos>, </s>)."""
    plain = tokenizer("probe", add_special_tokens=False)["input_ids"]
    full = tokenizer("probe")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    return [], []


class TextEncoder:
    """Token ids of sources and answers for one tokenizer, template and length limit.

    ``source_suffix``: keep the tokenizer's trailing specials after the source (T5's </s>, an
    encoder input); a decoder's prompt runs straight on into its answer, so it drops them.
    ``answer_space``: the separator before an answer (" " for decoders, "" for T5).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        template: Template,
        source_suffix: bool,
        answer_space: str,
    ):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.template = template
        self.answer_space = answer_space
        self.eos_id = eos_id(tokenizer)
        before, after = special_ids(tokenizer)
        self.before, self.after = before, (after if source_suffix else [])
        self.fixed = self._ids(template.prefix), self._ids(template.suffix)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def source(self, example: Example) -> list[int]:
        """Specials + "Input: {text} [SEP] {text_pair} Output:" within ``max_length`` ids."""
        prefix, suffix = self.fixed
        parts = [self._ids(" " + example["text"])]
        separator = []
        if example.get("text_pair") is not None:
            separator = self._ids(self.template.pair_separator)
            parts.append(self._ids(" " + example["text_pair"]))
        fixed = len(self.before) + len(prefix) + len(separator) + len(suffix) + len(self.after)
        room = self.max_length - fixed
        if room < 1:
            raise UserError(f"max length {self.max_length} leaves no room for the input text")
        parts = _longest_first(parts, room)
        body = parts[0] + (separator + parts[1] if len(parts) > 1 else [])
        return self.before + prefix + body + suffix + self.after

    def answer(self, text: str, max_tokens: int | None = None, eos: bool = True) -> list[int]:
        """The answer's ids, cut to ``max_tokens`` (counting the EOS), then EOS if asked."""
        ids = self._ids(self.answer_space + text)
        if max_tokens is not None:
            ids = ids[: max(1, max_tokens - int(eos))]
        return ids + [self.eos_id] if eos else ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def cache_key(self) -> str:
        return f"template={self.template.key()}:max_length={self.max_length}:eos={self.eos_id}"


def _longest_first(parts: list[list[int]], room: int) -> list[list[int]]:
    """Cut the end of the longest part, one id at a time, until all fit (HF's longest_first)."""
    lengths = [len(p) for p in parts]
    while sum(lengths) > room:
        lengths[lengths.index(max(lengths))] -= 1
    return [p[:n] for p, n in zip(parts, lengths, strict=True)]
