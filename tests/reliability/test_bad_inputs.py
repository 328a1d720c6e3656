"""Bad input the other suites do not cover: duplicate ids, model dirs that hold the wrong kind of
model, tokenizers without EOS or pad, bad reliability knobs. Each asserts the exact message, the
exit code, no traceback, and that no stage output was written (docs/bad_inputs.md lists all)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

TEXT = "高血压患者应低盐饮食，规律服药，定期监测血压。"


def clean(r, code: int) -> None:
    assert r.code == code, (r.code, r.err[-3000:])
    assert "Traceback" not in r.err


def no_outputs(run: Path, stage: str) -> None:
    assert not (run / stage / "hf").exists() and not (run / stage / "summary.json").exists()


def fit(run_cli, run: Path, *extra: str):
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
