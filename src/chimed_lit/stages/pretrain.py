"""Continued pre-training: next-token loss on packed documents, from `model.pretrained` (or a
fresh model). Exports `pretrain/hf/` as a plain causal LM."""

from __future__ import annotations

from chimed_lit.stages import Stage


class Pretrain(Stage):
    """The base `Stage` as it is: one causal LM, Trainer.fit, `hf/`."""
