"""The one list of run-wide settings: what a run's every stage shares.

`chimed-lit fit stage=rlhf strategy=fsdp2 seed=3` trains every stage it runs with that strategy
and seed; a stage-less override of any other key applies to the target stage only. Both the
pipeline (composing upstream stages) and stages that build a stage of their own (rejection
sampling's SFT round) read this module, so the two can never drift apart.
"""

from __future__ import annotations

# config nodes copied whole into every stage of a run
RUN_WIDE_NODES = (
    "paths",
    "seed",
    "model",
    "logger",
    "resume",
    "resume_allow_config_change",
    "checkpoint",
    "experiment",
    "strategy",
)
# Trainer arguments that say where a run executes (`sft.trainer.devices=1` still overrides one
# stage). Precision is not among them: `fit stage=sft trainer.precision=bf16-mixed` changes the
# target only, so the pretrain stage it needs is reused.
HARDWARE_KEYS = ("accelerator", "devices", "num_nodes")
# what a stage built inside another (rejection sampling's SFT round) takes from the stage asking:
# the hardware keys and the numeric precision it runs in
INNER_STAGE_TRAINER_KEYS = (*HARDWARE_KEYS, "precision")
# a stage's own starting point, never shared
NOT_RUN_WIDE = ("model.pretrained",)


def override_key(override: str) -> str:
    """`++a.b=1` -> `a.b`."""
    return override.lstrip("+~").split("=", 1)[0]


def is_run_wide(override: str) -> bool:
    """True for an override (or a bare key) that every stage of the run shares."""
    key = override_key(override)
    if key in NOT_RUN_WIDE:
        return False
    head, _, rest = key.partition(".")
    return head in RUN_WIDE_NODES or (head == "trainer" and rest in HARDWARE_KEYS)
