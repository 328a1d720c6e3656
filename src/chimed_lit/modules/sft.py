"""`SFTModule`: supervised fine-tuning, the causal-LM machinery with assistant-only targets.

Knobs are `CausalLMModule`'s (optimizer, scheduler, stage, loss_chunk). What differs lives in the data:
`SFTDataModule` sets labels on assistant tokens and their EOS only, so the same next-token loss
is the assistant-token loss, logged as `sft/train_loss`, `sft/val_loss`, `sft/val_ppl`.
"""

from __future__ import annotations

from chimed_lit.modules.causal_lm import CausalLMModule


class SFTModule(CausalLMModule):
    def __init__(self, *args, stage: str = "sft", **kwargs):
        super().__init__(*args, stage=stage, **kwargs)
