"""The fixed values some trial settings take, torch-free: ``settings`` checks a value against
them without importing the modules that act on it (``heads``, ``pooling``, ``train``: torch);
``heads`` and ``pooling`` read theirs from here."""

from __future__ import annotations

#: ``--head``: what the classification head does (``heads.resolve_head``).
HEAD_MODES = ("trainable", "frozen", "label-words", "auto")
#: ``--pooling``: what an encoder's head reads (``pooling.resolve_pooling``).
POOLINGS = ("auto", "cls", "mean")
#: ``--schedule``: the learning rate after warmup (``train``).
SCHEDULES = ("linear", "constant")
