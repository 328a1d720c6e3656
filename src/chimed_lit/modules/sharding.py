"""The `configure_model` hook our LightningModules share: shard when the strategy asks for it."""

from __future__ import annotations


class ShardedModelHook:
    """Mixin for LightningModules: under `strategy=fsdp2` shard the trainable transformers
    models held as attributes (frozen ones, such as a reference model, stay whole); under any
    other strategy do nothing (DeepSpeed and DDP wrap the module themselves)."""

    def configure_model(self) -> None:
        from chimed_lit.plugins.fsdp2 import FSDP2Strategy, shard_models

        strategy = self.trainer.strategy
        if not isinstance(strategy, FSDP2Strategy) or getattr(self, "_sharded", False):
            return
        from transformers import PreTrainedModel

        models = [m for m in self.children() if isinstance(m, PreTrainedModel)
                  and any(p.requires_grad for p in m.parameters())]
        shard_models(models, strategy)
        self._sharded = True
