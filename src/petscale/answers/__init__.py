"""How a model answers a task; each answer format turns examples into features, a loss and
predictions. ``answerer_for`` picks the format for a loaded model and task:

- ``classify``: an encoder's classification head;
- ``seq2seq``: T5 generates the label word (classification) or the answer text (QA,
  summarization) after "Input: {x} Output: ";
- ``causal``: a decoder scores each label word after that prompt, or generates the answer.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from petscale.answers.base import Answerer
from petscale.answers.causal import CausalAnswerer
from petscale.answers.classify import ClassifyAnswerer
from petscale.answers.seq2seq import Seq2SeqAnswerer
from petscale.answers.template import Template
from petscale.answers.words import DEFAULT_MAX_NEW_TOKENS
from petscale.errors import UserError
from petscale.tasks.base import TaskSpec

_WORDS = {"seq2seq": Seq2SeqAnswerer, "causal": CausalAnswerer}


def answerer_for(
    answer: str,
    spec: TaskSpec,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    template: Template | None = None,
) -> Answerer:
    """``max_length`` bounds the source; ``max_new_tokens`` the generated (and trained) answer."""
    if answer == "classify":
        if spec.kind != "classification":
            raise UserError(f"a classification head cannot answer {spec.name!r} ({spec.kind})")
        return ClassifyAnswerer(spec, tokenizer, max_length)
    if answer in _WORDS:
        return _WORDS[answer](spec, tokenizer, max_length, max_new_tokens, template)
    raise UserError(f"answer format {answer!r} for task {spec.name!r} is not available yet")


__all__ = ["DEFAULT_MAX_NEW_TOKENS", "Answerer", "Template", "answerer_for"]
