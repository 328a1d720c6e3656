"""Bad input to `chimed-lit eval`: every problem at once, the documented exit codes, no traceback,
and nothing loaded or written before the checks pass."""

from __future__ import annotations


def test_bad_overrides_all_reported_before_any_model(run_eval_cli, tmp_path):
    r = run_eval_cli(
        "task=nerr",
        "eval.limt=3",
        "eval.batch_size=abc",
        "model.trust_remote_code=maybe",
        "modell.dtype=bf16",
        "paths=nope",
        "model.pretrained=/no/such/model",
        f"paths.output_dir={tmp_path}",
    )
    assert r.code == 2, r.err
    err = r.err
    assert "unknown key 'eval.limt' (did you mean 'eval.limit'?)" in err
    assert "eval.batch_size='abc': expected an integer" in err
    assert "model.trust_remote_code='maybe': expected true or false" in err
    assert "unknown key 'modell.dtype' (did you mean 'model.dtype'?)" in err
    assert "paths=nope: no such option" in err
    assert "task='nerr': expected one of ner, mcq, dialogue, cami, mica, scale, all" in err
    assert "6 configuration errors" in err
    assert "Traceback" not in err and "/no/such/model" not in err  # the model was never looked at
    assert not (tmp_path / "eval").exists()


def test_value_and_combination_problems(run_eval_cli, tmp_path):
    r = run_eval_cli(
        "task=ner",
        "eval.limit=0",
        "eval.k_shot=2",
        "eval.template=llama",
        "eval.modes=[letter,fancy]",
        "data.format=cmexam",
        f"data.ner_files=[{tmp_path}/missing.json]",
        f"paths.output_dir={tmp_path}",
    )
    assert r.code == 2, r.err
    for text in (
        "eval.limit=0: expected a positive integer or null",
        "eval.k_shot=2 needs eval.fewshot_file",
        "eval.template='llama': expected one of chimed, ziya, tokenizer",
        "eval.modes: unknown mode(s) ['fancy']",
        "data.format=cmexam is a mcq format, not ner",
        f"data.ner_files: no such file '{tmp_path}/missing.json'",
    ):
        assert text in r.err, (text, r.err)
    assert "Traceback" not in r.err


def test_data_task_without_files_names_data_files(run_eval_cli, tiny_hf, tmp_path):
    r = run_eval_cli("task=mcq", f"model.pretrained={tiny_hf}", f"paths.output_dir={tmp_path}")
    assert r.code == 2
    assert "task=mcq needs data: set data.files=[path,...]" in r.err


def test_cami_without_items_file(run_eval_cli, tiny_hf, tmp_path):
    r = run_eval_cli("task=cami", f"model.pretrained={tiny_hf}", f"paths.output_dir={tmp_path}")
    assert r.code == 2
    assert "task=cami needs eval.items_file" in r.err


def test_missing_model_dir_is_exit_4(run_eval_cli, tmp_path):
    missing = tmp_path / "runs" / "a" / "sft" / "hf"
    r = run_eval_cli("task=scale", f"model.pretrained={missing}", f"paths.output_dir={tmp_path}")
    assert r.code == 4, r.err
    assert f"model.pretrained='{missing}': no such directory" in r.err
    assert "Traceback" not in r.err
    not_hf = tmp_path / "not_hf"
    not_hf.mkdir()
    r = run_eval_cli("task=scale", f"model.pretrained={not_hf}", f"paths.output_dir={tmp_path}")
    assert r.code == 4 and "has no config.json" in r.err


def test_wrong_kind_of_data_file_is_a_data_error(run_eval_cli, tiny_hf, tmp_path, shared_file):
    dialogue = shared_file("dialogue/covid_dialogue_zh_train.json")
    r = run_eval_cli(
        "task=ner",
        f"model.pretrained={tiny_hf}",
        f"paths.output_dir={tmp_path}",
        f"data.files=[{dialogue}]",
        "eval.progress=false",
    )
    assert r.code == 3, r.err
    assert dialogue in r.err and "is for task 'dialogue', not 'ner'" in r.err
    assert "Traceback" not in r.err
    assert not (tmp_path / "eval" / "ner.json").exists()


def test_wrong_items_count_is_a_data_error(run_eval_cli, tiny_hf, tmp_path):
    items = tmp_path / "cami_items.txt"
    items.write_text("\n".join(f"statement {i}" for i in range(39)), encoding="utf-8")
    r = run_eval_cli(
        "task=cami",
        f"model.pretrained={tiny_hf}",
        f"paths.output_dir={tmp_path}",
        f"eval.items_file={items}",
        "eval.progress=false",
    )
    assert r.code == 3, r.err
    assert "expected 40 items in the instrument's order, got 39" in r.err
