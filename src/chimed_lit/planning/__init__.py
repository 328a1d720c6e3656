"""Memory planning without weights: how much GPU memory each stage of the regime needs.

`model_size` measures a model on the meta device from its config, `memory` turns parameter
counts into bytes per GPU (model states per ZeRO stage, activations, KV cache), `setup` reads a
stage's composed config, `stage_plan` adds up a stage's peak, `advice` finds the smallest change
that fits and `report` prints it. `chimed-lit plan` (cli/plan.py) ties them together.
"""
