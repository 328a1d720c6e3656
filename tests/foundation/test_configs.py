"""Every YAML under configs/ composes, and every `_target_` that needs no weights instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

import chimed_lit.configs as configs_pkg

CONFIG_DIR = Path(configs_pkg.__file__).resolve().parent
# targets that need a model (weights) or a whole run: composed and type-checked, not built here
NEEDS_WEIGHTS = ("chimed_lit.modules.",)


def all_yaml() -> list[Path]:
    return sorted(CONFIG_DIR.rglob("*.yaml"))


def overrides_for(path: Path) -> tuple[str, list[str]]:
    rel = path.relative_to(CONFIG_DIR)
    if len(rel.parts) == 1:  # a primary config: fit, eval, generate, chat
        return rel.stem, []
    group, option = "/".join(rel.parts[:-1]), rel.stem
    return "fit", [f"{group}={option}"]


@pytest.fixture(scope="module", autouse=True)
def hydra_ctx():
    GlobalHydra.instance().clear()
    with initialize_config_module("chimed_lit.configs", version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def test_every_yaml_is_composed_and_counted():
    files = all_yaml()
    composed = 0
    for path in files:
        name, overrides = overrides_for(path)
        cfg = compose(config_name=name, overrides=overrides)
        assert isinstance(cfg, DictConfig) and len(cfg) > 0, path
        composed += 1
    assert composed == len(files)
    assert composed >= 19  # fit.yaml and every option of paths, model, data, stage, trainer, ...


def _targets(node, path=""):
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for k in node:
            if k == "hydra":
                continue
            yield from _targets(node._get_node(k), f"{path}.{k}" if path else str(k))


@pytest.mark.parametrize("path", all_yaml(), ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_target_instantiates(path, tmp_path):
    name, overrides = overrides_for(path)
    cfg = compose(
        config_name=name,
        overrides=overrides + [f"paths.output_dir={tmp_path}"] if name == "fit" else overrides,
    )
    OmegaConf.resolve(cfg) if name != "fit" else None
    built = 0
    for where, node in _targets(cfg):
        if str(node._target_).startswith(NEEDS_WEIGHTS):
            continue
        if OmegaConf.missing_keys(node):  # a preset that takes the user's own path (ChiMed)
            assert get_class(node._target_) is not None
            with pytest.raises(MissingMandatoryValue):
                instantiate(node)
            continue
        if node.get("accelerator") == "gpu" and not torch.cuda.is_available():
            assert get_class(node._target_) is not None  # a GPU trainer needs a GPU to build
            continue
        obj = instantiate(node)
        assert obj is not None, where
        built += 1
    if name == "fit":
        assert built >= 5  # model factory, data module, optimizer, scheduler, trainer, ...
