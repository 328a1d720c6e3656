"""Bad input the other suites do not cover: duplicate ids, model dirs that hold the wrong kind of
model, tokenizers without EOS or pad, bad reliability knobs. Each asserts the exact message, the
exit code, no traceback, and that no stage output was written (docs/bad_inputs.md lists all)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

TEXT = "高血压患者应低盐饮食，规律服药，定期监测血压。"


def clean(r, code: int) -> None:
    assert r.code == code, (r.code, r.err[-3000:])
    # logging's own report of a test harness stream closed under it is not the run's traceback
    err = re.sub(r"--- Logging error ---.*?\nArguments: [^\n]*\n", "", r.err, flags=re.S)
    assert "Traceback" not in err


def no_outputs(run: Path, stage: str) -> None:
    assert not (run / stage / "hf").exists() and not (run / stage / "summary.json").exists()


def _logs_here() -> None:
    """Log handlers made during an earlier test (Hydra's, Lightning's, transformers') keep
    that test's captured stderr, closed by now: point them at this test's, so a run that
    reaches the Trainer logs cleanly instead of printing logging's own tracebacks."""
    import logging
    import sys

    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    real = (sys.__stderr__, sys.__stdout__)
    for lg in loggers:
        for h in getattr(lg, "handlers", []):
            if type(h) is logging.StreamHandler and h.stream not in real:
                h.stream = sys.stderr  # (setStream would flush the closed one)


def fit(run_cli, run: Path, *extra: str):
    _logs_here()
    return run_cli(
        "fit",
        "logger=csv",
        "trainer.max_steps=1",
        "model.arch.num_hidden_layers=1",
        f"paths.output_dir={run}",
        *extra,
    )


def test_duplicate_id_named_with_its_first_place(run_cli, tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [{"id": f"r{i}", "text": f"{i}{TEXT}"} for i in range(6)] + [{"id": "r2", "text": TEXT}]
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    r = fit(run_cli, tmp_path / "run", f"data.train_files=[{train}]")
    clean(r, 3)
    assert (
        f"chimed-lit: {train}, line 7: field 'id': duplicate id 'r2' (first at {train}, line 3)"
        in r.err
    )
    no_outputs(tmp_path / "run", "pretrain")


def test_duplicate_id_across_two_files(run_cli, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, ids in ((a, ["x", "y", "z"]), (b, ["w", "x"])):
        path.write_text(
            "".join(
                json.dumps({"id": i, "text": f"{i}{TEXT}"}, ensure_ascii=False) + "\n" for i in ids
            ),
            "utf-8",
        )
    r = fit(run_cli, tmp_path / "run", f"data.train_files=[{a},{b}]")
    clean(r, 3)
    assert f"{b}, line 2: field 'id': duplicate id 'x' (first at {a}, line 1)" in r.err


def test_duplicate_ids_skipped_and_counted_when_asked(tmp_path, demo_tok):
    from chimed_lit.data.pretrain import PretrainDataModule

    train = tmp_path / "t.jsonl"
    rows = [{"id": i % 4, "text": f"{i}{TEXT}"} for i in range(6)]
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    dm = PretrainDataModule(
        tokenizer=demo_tok,
        train_files=[str(train)],
        val_fraction=0.0,
        on_bad_record="skip",
        max_length=64,
        cache_dir=str(tmp_path),
    )
    dm.setup("fit")
    assert dm.stats["train_skipped"] == 2 and dm.stats["train_records"] == 4


def test_sft_from_a_reward_model_dir_is_refused(run_cli, tmp_path, tiny_models):
    r = fit(run_cli, tmp_path, "stage=sft", f"model.pretrained={tiny_models['reward']}")
    clean(r, 4)
    assert (
        f"chimed-lit: model.pretrained='{tiny_models['reward']}' holds a "
        "LlamaForSequenceClassification, not a causal language model (*ForCausalLM)"
    ) in r.err
    no_outputs(tmp_path, "sft")


def test_wrong_architecture_is_refused(run_cli, tmp_path):
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(
        json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"})
    )
    r = fit(run_cli, tmp_path / "run", "stage=sft", f"model.pretrained={bert}")
    clean(r, 4)
    assert (
        f"model.pretrained='{bert}' holds a BertForMaskedLM, not a causal language model" in r.err
    )


def test_missing_model_dir_in_fit(run_cli, tmp_path):
    missing = tmp_path / "no_such_model"
    r = fit(run_cli, tmp_path / "run", "stage=sft", f"model.pretrained={missing}")
    clean(r, 4)
    assert f"chimed-lit: model directory '{missing}' does not exist" in r.err


@pytest.mark.parametrize(
    "policy, reward, message",
    [
        (
            "lm",
            "lm",
            (
                "stage.reward_model='{lm}' has no scalar reward head (it holds a "
                "LlamaForCausalLM): pass the reward stage's hf/ folder"
            ),
        ),
        (
            "reward",
            "reward",
            (
                "stage.policy='{reward}' holds a LlamaForSequenceClassification, not a "
                "causal language model"
            ),
        ),
    ],
    ids=["reward-model-without-scalar-head", "policy-is-a-reward-model"],
)
def test_rlhf_models_of_the_wrong_kind(run_cli, tmp_path, tiny_models, policy, reward, message):
    r = fit(
        run_cli,
        tmp_path,
        "stage=rlhf",
        f"stage.policy={tiny_models[policy]}",
        f"stage.reward_model={tiny_models[reward]}",
    )
    clean(r, 4)
    assert "chimed-lit: " + message.format(**tiny_models) in r.err
    no_outputs(tmp_path, "rlhf")


def test_reward_model_with_two_outputs(run_cli, tmp_path, tiny_models):
    two = tmp_path / "two"
    shutil.copytree(tiny_models["reward"], two)
    cfg = json.loads((two / "config.json").read_text())
    cfg["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}
    (two / "config.json").write_text(json.dumps(cfg))
    r = fit(
        run_cli,
        tmp_path / "run",
        "stage=rlhf",
        "stage.algorithm=rejection_sampling",
        f"stage.policy={tiny_models['lm']}",
        f"stage.reward_model={two}",
    )
    clean(r, 4)
    assert f"stage.reward_model='{two}' has 2 outputs; a reward model has exactly one" in r.err


def _tokenizer_dir(src: Path, dst: Path, **changes) -> Path:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    for name, value in changes.items():
        setattr(tok, name, value)
    tok.save_pretrained(dst)
    return dst


def test_tokenizer_without_eos(run_cli, tmp_path, tiny_models):
    tok = _tokenizer_dir(tiny_models["lm"], tmp_path / "tok", eos_token=None)
    r = fit(
        run_cli,
        tmp_path / "run",
        "stage=sft",
        f"model.pretrained={tiny_models['lm']}",
        f"model.tokenizer={tok}",
    )
    clean(r, 4)
    assert f"chimed-lit: tokenizer '{tok}' has no EOS token; set one before training" in r.err


def test_tokenizer_without_pad_gets_one_that_is_not_eos(tmp_path, tiny_models):
    from chimed_lit.models.factory import ModelFactory

    tok_dir = _tokenizer_dir(tiny_models["lm"], tmp_path / "tok", pad_token=None)
    tok = ModelFactory(pretrained=str(tiny_models["lm"]), tokenizer=str(tok_dir)).load_tokenizer()
    assert tok.pad_token is not None and tok.pad_token_id != tok.eos_token_id


@pytest.mark.parametrize(
    "override, message",
    [
        ("on_nonfinite=maybe", "on_nonfinite='maybe': use one of stop, skip"),
        ("checkpoint.verify=crc", "checkpoint.verify='crc': use one of full, quick"),
    ],
)
def test_bad_reliability_knobs(run_cli, tmp_path, override, message):
    r = fit(run_cli, tmp_path, override, "resume=true")
    clean(r, 2)
    assert f"chimed-lit: configuration error:\n  - {message}" in r.err
    assert not (tmp_path / "pretrain").exists()  # refused before anything was built


# ----- issue 20, point 3: no traceback for any of these --------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.val_fraction=1.5", "data.val_fraction=1.5: expected a share in [0, 1)"),
        ("data.batch_size=0", "data.batch_size=0: expected a positive integer"),
        ("data.batch_size=-1", "data.batch_size=-1: expected a positive integer"),
        ("data.max_length=0", "data.max_length=0: expected an integer of at least 2 (tokens)"),
        ("optimizer.lr=nan", "optimizer.lr=nan: expected a finite positive learning rate"),
        ("data.encoding=nope", "data.encoding='nope': unknown encoding (e.g. utf-8, gb18030"),
        ("trainer.max_steps=-5", "trainer.max_steps=-5: expected a positive integer"),
        ("trainer.max_steps=0", "trainer.max_steps=0: expected a positive integer"),
        ("checkpoint.every_n_steps=0", "checkpoint.every_n_steps=0: expected a positive integer"),
    ],
)
def test_values_out_of_range_are_refused_by_the_preflight(run_cli, tmp_path, override, message):
    r = fit(run_cli, tmp_path, override)
    clean(r, 2)
    assert f"chimed-lit: configuration error:\n  - {message}" in r.err
    assert not (tmp_path / "pretrain").exists()  # refused before anything was built


def test_all_bad_values_are_reported_together(run_cli, tmp_path):
    r = fit(run_cli, tmp_path, "data.batch_size=0", "optimizer.lr=-1", "trainer.max_steps=0")
    clean(r, 2)
    assert "chimed-lit: 3 configuration errors:" in r.err
    assert "optimizer.lr=-1: expected a finite positive learning rate" in r.err


def test_max_steps_zero_leaves_a_good_hf_alone(run_cli, tmp_path):
    run = tmp_path / "run"
    clean(fit(run_cli, run), 0)
    before = (run / "pretrain" / "hf" / "model.safetensors").read_bytes()
    r = fit(run_cli, run, "trainer.max_steps=0")
    clean(r, 2)
    assert "0 would export the starting weights untrained" in r.err
    assert (run / "pretrain" / "hf" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("below", [False, True], ids=["the-file", "a-dir-under-it"])
def test_output_dir_that_is_a_file(run_cli, tmp_path, below):
    afile = tmp_path / "afile"
    afile.write_text("not a dir")
    out = afile / "run" if below else afile
    r = fit(run_cli, out)
    clean(r, 2)
    what = f"cannot be created: {afile} is a file" if below else "is a file"
    assert f"chimed-lit: configuration error:\n  - paths.output_dir='{out}' {what}" in r.err
    assert afile.read_text() == "not a dir"


@pytest.mark.parametrize("name, indent", [("one.jsonl", None), ("one.json", None), ("one.json", 2)])
def test_a_file_of_one_record(run_cli, tmp_path, name, indent):
    """One JSONL line, or a JSON file whose top level is one object (on one line or many)."""
    train = tmp_path / name
    train.write_text(json.dumps({"text": TEXT}, ensure_ascii=False, indent=indent), "utf-8")
    r = fit(run_cli, tmp_path / "run", f"data.train_files=[{train}]")
    clean(r, 3)
    assert (
        f"chimed-lit: {train}: 1 train record(s) are too few to hold out data.val_fraction=0.1 "
        "for validation and train on the rest; add records, give data.val_files, or set "
        "data.val_fraction=0"
    ) in r.err
    no_outputs(tmp_path / "run", "pretrain")


def test_fewer_examples_than_one_batch(run_cli, tmp_path):
    train = tmp_path / "three.jsonl"
    train.write_text(
        "".join(json.dumps({"text": f"{i}{TEXT}"}, ensure_ascii=False) + "\n" for i in range(3)),
        "utf-8",
    )
    r = fit(run_cli, tmp_path / "run", f"data.train_files=[{train}]", "data.val_fraction=0")
    clean(r, 3)
    assert (
        f"chimed-lit: {train}: only 1 train blocks (from 3 records): not one full batch of "
        "data.batch_size=8, so training would take no step"
    ) in r.err
    no_outputs(tmp_path / "run", "pretrain")


class _Pickled:
    """Runs code when unpickled without weights_only (it must never run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _broken_dir(kind: str, src: Path, dst: Path) -> tuple[Path, str]:
    """A copy of the model dir `src` broken as `kind`; returns it and the message expected."""
    import torch

    shutil.copytree(src, dst)
    weights = dst / "model.safetensors"
    if kind == "no-weights":
        weights.unlink()
        return dst, (
            f"model directory '{dst}' has no weights (none of model.safetensors, "
            "model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json)"
        )
    if kind == "truncated-safetensors":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        return dst, f"model directory '{dst}': {weights} is truncated or corrupt ("
    if kind == "corrupt-tokenizer":
        (dst / "tokenizer.json").write_text("garbage")
        return dst, (f"tokenizer '{dst}': cannot load {dst / 'tokenizer.json'} (JSONDecodeError: ")
    if kind == "missing-tokenizer":
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (dst / f).unlink()
        return dst, f"tokenizer '{dst}' has no tokenizer files (none of tokenizer.json"
    assert kind == "malicious-pickle"
    weights.unlink()
    torch.save({"x": _Pickled(dst.parent / "PWNED")}, dst / "pytorch_model.bin")
    return dst, (
        f"model directory '{dst}': {dst / 'pytorch_model.bin'} holds Python objects that are "
        "not tensors and was refused (loading runs with weights_only=True"
    )


BROKEN = [
    "no-weights",
    "truncated-safetensors",
    "corrupt-tokenizer",
    "missing-tokenizer",
    "malicious-pickle",
]


@pytest.mark.parametrize("command", ["fit", "eval"])
@pytest.mark.parametrize("kind", BROKEN)
def test_broken_model_dirs_are_named_with_their_file(run_cli, tmp_path, tiny_models, kind, command):
    broken, message = _broken_dir(kind, tiny_models["lm"], tmp_path / "model")
    if command == "fit":
        r = fit(run_cli, tmp_path / "run", "stage=sft", f"model.pretrained={broken}")
        no_outputs(tmp_path / "run", "sft")
    else:
        r = run_cli(
            "eval", "task=scale", f"model.pretrained={broken}", f"paths.output_dir={tmp_path}/e"
        )
    clean(r, 4)
    assert "chimed-lit: " + message in r.err
    assert not (tmp_path / "PWNED").exists()


# ----- issue 20, point 7: every stage refuses to lose more than max_dropped_fraction --------


def _dm(kind: str, tok, tmp_path: Path, **knobs):
    from chimed_lit.data.preference import PreferenceDataModule
    from chimed_lit.data.pretrain import PretrainDataModule
    from chimed_lit.data.prompts import PromptDataModule
    from chimed_lit.data.sft import SFTDataModule

    cls = {
        "pretrain": PretrainDataModule,
        "sft": SFTDataModule,
        "reward": PreferenceDataModule,
        "prompts": PromptDataModule,
    }[kind]
    dm = cls(tokenizer=tok, cache_dir=str(tmp_path), **knobs)  # the shipped demo corpus
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(
    "kind, max_length, message",
    [
        ("sft", 16, "45 of 291 train examples (15.5%) have nothing left to learn after "),
        ("reward", 8, "244 of 250 train pairs (97.6%) have a response that alone fills "),
        ("prompts", 4, "250 of 250 train prompts (100.0%) keep no token of their question"),
    ],
)
def test_too_many_dropped_is_a_data_error_in_every_stage(
    demo_tok, tmp_path, kind, max_length, message
):
    from chimed_lit.io.errors import DataError

    with pytest.raises(DataError) as e:
        _dm(kind, demo_tok, tmp_path, max_length=max_length)
    assert message in str(e.value)
    assert f"data.max_length={max_length}" in str(e.value)
    assert str(e.value).startswith("/") and "demo/" in str(e.value)  # names the file


def test_dropped_within_the_share_is_counted(demo_tok, tmp_path):
    dm = _dm("reward", demo_tok, tmp_path, max_length=8, max_dropped_fraction=1.0 - 1e-9)
    assert dm.stats["train_dropped"] == 244 and len(dm.train_dataset) == 6


def test_pretrain_splits_documents_and_drops_none(demo_tok, tmp_path):
    """Pre-training under the same rule: a document longer than a block is split, never
    dropped, so even a 2-token block loses nothing and the check passes with 0 dropped."""
    dm = _dm("pretrain", demo_tok, tmp_path, max_length=2, max_dropped_fraction=0.0)
    assert dm.stats["train_dropped"] == 0 and dm.stats["train_split_documents"] > 0


def test_reward_stage_fails_from_the_cli_when_pairs_are_dropped(run_cli, tmp_path, tiny_models):
    r = fit(
        run_cli,
        tmp_path,
        "stage=reward",
        f"model.pretrained={tiny_models['lm']}",
        "data.max_length=8",
    )
    clean(r, 3)
    assert (
        "244 of 250 train pairs (97.6%) have a response that alone fills data.max_length=8 "
        "(no prompt token fits), more than data.max_dropped_fraction=0.05"
    ) in r.err
    no_outputs(tmp_path, "reward")
