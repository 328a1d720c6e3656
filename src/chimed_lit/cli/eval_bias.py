"""`chimed-lit eval task=bias`: the paper's Figure 2 (CAMI and MICA of several models) as one
command.

The models are `eval.models` (dirs or Hub ids), else `model.pretrained`, else every stage of
`paths.output_dir` (as task=all finds them); the scales are those whose item texts the user
gives (`eval.cami_items`, `eval.mica_items`). Both are settled before the first model loads, so
a wrong item count or a missing model dir costs no scoring. Writes, each atomically, under
`<eval.output_dir>`: `bias.png` (a panel per scale), `bias.md` / `bias.csv` (a row per model and
answer mode) and `<model>/<scale>.json` (every answer); with `logger=wandb` the chart and the
table go to W&B as well.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from chimed_lit.cli.eval_config import SCALE_MODES, as_list, bias_items, run_kwargs
from chimed_lit.cli.eval_models import (
    check_model_dir,
    free_memory,
    is_local_model,
    load_model,
    stage_models,
)
from chimed_lit.eval.api import library_call
from chimed_lit.io.errors import CheckpointError


def model_name(source: str) -> str:
    """A model's name in the chart and table: its stage for `<run>/<stage>/hf` (sft), the dir's
    name for another dir, the id for a Hub id."""
    if not is_local_model(source):
        return source
    path = Path(source).expanduser()
    return path.parent.name if path.name == "hf" else path.name


def model_names(sources: list[str]) -> list[str]:
    """Names for `sources`, made unique: two runs' `sft` stages become `a/sft` and `b/sft`."""
    first = [model_name(s) for s in sources]
    names = []
    for name, source in zip(first, sources, strict=True):
        if first.count(name) > 1 and is_local_model(source):
            parts = [p for p in Path(source).expanduser().parts if p not in ("hf", "/")]
            name = "/".join(parts[-2:])
        names.append(name)
    return [n if names.count(n) == 1 else f"{n} ({i})" for i, n in enumerate(names, 1)]


def bias_models(cfg: DictConfig) -> list[tuple[str, str, str]]:
    """(name, source, the setting that named it) of every model to score, each dir checked."""
    listed = [str(m) for m in as_list(cfg.eval.models)]
    if listed:
        keyed = [(m, f"eval.models[{i}]") for i, m in enumerate(listed)]
    elif cfg.model.pretrained is not None:
        keyed = [(str(cfg.model.pretrained), "model.pretrained")]
    else:
        keyed = [(str(p), "paths.output_dir") for _, p in stage_models(cfg.paths.output_dir)]
        if not keyed:
            raise CheckpointError(
                f"task=bias found no stage with an hf/ model under {cfg.paths.output_dir}; "
                "set eval.models=[DIR_OR_HUB_ID,...], model.pretrained or paths.output_dir"
            )
    problems = []
    for source, key in keyed:
        try:
            check_model_dir(source, key)
        except CheckpointError as e:
            problems.append(str(e))
    if problems:
        raise CheckpointError("\n".join(problems))
    names = model_names([s for s, _ in keyed])
    return [(n, s, k) for n, (s, k) in zip(names, keyed, strict=True)]


def folder_name(name: str) -> str:
    """A model name as one folder name (`SCIR-HI/ChiMed-GPT` -> `SCIR-HI_ChiMed-GPT`)."""
    return re.sub(r"[^\w.-]+", "_", name).strip("_.") or "model"


def run_bias(cfg: DictConfig, out: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Score every model on every scale given; write the chart and tables; return
    {model: {scale: run_scale metrics}}."""
    from tqdm.auto import tqdm

    from chimed_lit.eval.bias_figure import plot_bias
    from chimed_lit.eval.bias_table import write_bias_table
    from chimed_lit.eval.keys_builtin import load_scale
    from chimed_lit.eval.report import write_task_result
    from chimed_lit.eval.runners_scales import run_scale

    scales = {s: library_call(load_scale, s, f) for s, f in bias_items(cfg).items()}
    models = bias_models(cfg)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    bar = tqdm(total=len(models) * len(scales), disable=not cfg.eval.progress, desc="bias")
    for name, source, key in models:
        model, tok = load_model(source, cfg.model, key)
        results[name] = {}
        for scale, inst in scales.items():
            bar.set_postfix_str(f"{name}/{scale}")
            result = library_call(run_scale, model, tok, inst, **run_kwargs(cfg, tok, SCALE_MODES))
            result.update(model=source, instrument=scale, key_status=inst.key_status)
            write_task_result(out / folder_name(name), scale, result)
            results[name][scale] = result["metrics"]
            bar.update()
        del model
        free_memory()
    bar.close()
    chart = plot_bias(results, out / "bias.png")
    chart.figure.clear()
    md_path, csv_path = write_bias_table(results, out)
    if chart.language == "en":
        print(
            "chimed-lit: chart labels in English: no installed font draws the Chinese ones "
            "(install one such as fonts-noto-cjk for Chinese labels)",
            file=sys.stderr,
        )
    _log_wandb(cfg, out / "bias.png", results)
    print(
        md_path.read_text(encoding="utf-8")
        + f"\nwrote {out / 'bias.png'}, {md_path} and {csv_path}"
    )
    return results


def _log_wandb(cfg: DictConfig, png: Path, results: dict[str, Any]) -> None:
    """The chart and the table to each configured W&B logger (one W&B run, job_type eval)."""
    loggers = {k: v for k, v in (cfg.get("logger") or {}).items() if v is not None}
    if not loggers:
        return
    import wandb
    from hydra.utils import instantiate

    from chimed_lit.eval.bias_table import bias_rows
    from chimed_lit.io.redaction import redact

    columns, rows = bias_rows(results)
    for spec in loggers.values():
        if wandb.run is not None:  # the logger would log into it: one run for this eval
            wandb.finish()
        logger = instantiate(spec, name="eval-bias", job_type="eval")
        logger.log_hyperparams(redact(OmegaConf.to_container(cfg, resolve=True)))
        logger.log_image(key="bias/figure", images=[str(png)])
        logger.log_table(key="bias/table", columns=columns, data=rows)
        logger.experiment.finish()
        print(
            f"chimed-lit: logged the bias chart and table to W&B ({logger.save_dir})",
            file=sys.stderr,
        )
