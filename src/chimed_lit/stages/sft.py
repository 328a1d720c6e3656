"""Supervised fine-tuning: loss on the assistant's words, starting from the pretrain stage's
`hf/` (or `model.pretrained`). Exports `sft/hf/` as a plain causal LM."""

from __future__ import annotations

from chimed_lit.stages import Stage


class SFT(Stage):
    """The base `Stage` as it is: one causal LM, Trainer.fit, `hf/`."""
