"""Hydra configs (package data), and the `${demo:NAME}` resolver they may use.

`${demo:mcq_sft.jsonl}` is the absolute path of a file shipped in `chimed_lit/demo/`, so a
recipe can mix a demo file into a stage's files (`configs/experiment/grpo_demo.yaml`). Hydra
imports this package before it composes, so the resolver exists whenever a config resolves.
"""

from omegaconf import OmegaConf

from chimed_lit.demo import demo_path

if not OmegaConf.has_resolver("demo"):
    OmegaConf.register_new_resolver("demo", demo_path)
