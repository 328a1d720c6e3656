"""The benchmark harness's pure pieces: FLOP counting against a hand count, batch counting,
and the ratio/median/table arithmetic (no timings)."""

from __future__ import annotations

import json
import math

import torch
from benchmarks import flops, report
from benchmarks.step_meter import StepMeter, segment_lengths
from benchmarks.workload import arch

# A small LLaMA by hand: d=8, ffn=16, 2 layers, 2 heads (head dim 4), 2 KV heads, vocab 32.
ARCH = {
    "hidden_size": 8,
    "intermediate_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "vocab_size": 32,
    "tie_word_embeddings": False,
}


def test_matmul_params_by_hand():
    # per layer: q,k,v,o = 4 * 8*8 = 256; gate, up, down = 3 * 8*16 = 384 -> 640; 2 layers 1280
    assert flops.matmul_params(ARCH) == 1280 + 32 * 8  # + LM head 256
    assert flops.matmul_params(ARCH, head="score") == 1280 + 8


def test_total_params_match_transformers():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**ARCH))
    assert flops.total_params(ARCH) == sum(p.numel() for p in model.parameters())
    big = {**arch("30M"), "vocab_size": 4096}
    assert 25e6 < flops.total_params(big) < 35e6  # the "30M" config is what its name says


def test_train_flops_by_hand():
    # documents of 3 and 2 tokens: 5 tokens, causal pairs 6 + 3 = 9
    pairs = flops.causal_pairs([3, 2])
    assert pairs == 9
    # forward: 2 * 1536 weights * 5 tokens + 4 * 2 layers * attn dim 8 * 9 pairs = 15360 + 576
    assert flops.train_flops(ARCH, 5, pairs) == 3 * (15360 + 576)
    # DPO: the frozen reference adds one forward on the same tokens
    assert flops.train_flops(ARCH, 5, pairs, forward_only_copies=1) == 4 * (15360 + 576)


def test_segment_lengths_padded_packed_and_padding_free():
    pad = 2
    padded = {
        "input_ids": torch.tensor([[5, 6, 7], [5, 6, pad]]),
        "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
    }
    assert segment_lengths(padded, pad) == [3, 2]
    # packed block: docs of 2 and 3 tokens, then 2 pad tokens with their own positions
    packed = {
        "input_ids": torch.tensor([[5, 6, 7, 8, 9, pad, pad]]),
        "position_ids": torch.tensor([[0, 1, 0, 1, 2, 0, 1]]),
    }
    assert segment_lengths(packed, pad) == [2, 3]
    meter = StepMeter("unused.json", pad, warmup=0)
    meter.count(packed)
    meter.step_end()
    assert (meter.tokens, meter.pairs, meter.items) == ([5], [3 + 6], [2])


def test_ratio_median_mfu_and_table():
    assert report.ratio(30.0, 20.0) == 1.5
    assert report.ratio(30.0, None) is None and report.ratio(1.0, 0.0) is None
    assert report.median([3.0, 1.0, None, 2.0]) == 2.0
    assert math.isclose(report.mfu(74e9, 185e9), 0.4)
    runs = {
        "ours": [
            {"rate": 300.0, "mfu": 0.5, "peak_rss_mb": 900.0},
            {"rate": 100.0, "mfu": 0.2, "peak_rss_mb": 950.0},
            {"rate": 200.0, "mfu": 0.3, "peak_rss_mb": 920.0},
        ],
        "trl_default": [{"rate": 80.0, "peak_rss_mb": 1000.0}, {"error": "exit 1", "rate": None}],
    }
    sides = report.summarise(runs)
    assert sides["ours"]["rate"] == 200.0 and sides["ours"]["peak_rss_mb"] == 950.0
    assert sides["trl_default"]["ours_over_this"] == 2.5
    assert sides["trl_default"]["errors"] == ["exit 1"]
    table = report.format_table({"pretrain": {"unit": "tokens/s", "sides": sides}})
    assert "2.50x" in table and " 30.0%" in table and "trl_default" in table
    assert "GPU" not in table  # CPU runs have no GPU memory column
    cuda_runs = {
        "ours": [{"rate": 10.0, "peak_gpu_mb": 900.0}, {"rate": 12.0, "peak_gpu_mb": 950.0}]
    }
    cuda_sides = report.summarise(cuda_runs)
    assert cuda_sides["ours"]["peak_gpu_mb"] == 950.0
    assert "GPU 950 MB" in report.format_table(
        {"pretrain": {"unit": "tokens/s", "sides": cuda_sides}}
    )
    # a variant of our config (here: checkpointing) gets its own ratio to each peer side
    runs["ours_ckpt"] = [{"rate": 120.0, "peak_rss_mb": 700.0}]
    sides = report.summarise(runs)
    assert sides["ours_ckpt"]["over_peer"] == {"trl_default": 1.5}
    assert sides["ours_ckpt"]["ours_over_this"] == 200.0 / 120.0
    variants = report.format_variants({"pretrain": {"unit": "tokens/s", "sides": sides}})
    assert "ours_ckpt" in variants and "1.50x" in variants and "700 vs 1000 MB" in variants
    # the first step's time (where a compile falls) is reported beside a variant's ratio
    runs["ours_compiled"] = [
        {"rate": 240.0, "peak_rss_mb": 910.0, "first_step_s": 12.25},
        {"rate": 260.0, "peak_rss_mb": 905.0, "first_step_s": 14.75},
    ]
    sides = report.summarise(runs)
    assert sides["ours_compiled"]["first_step_s"] == 13.5
    variants = report.format_variants({"rlhf": {"unit": "prompts/s", "sides": sides}})
    assert "ours_compiled" in variants and "3.12x" in variants and "first step 13.5 s" in variants


def test_lightning_meter_ends_a_step_before_other_callbacks(tmp_path):
    """The end-of-training checkpoint (a callback's on_train_batch_end on the last step) is not
    timed: the meter moves itself ahead of the callbacks listed before it."""
    import time

    import lightning as L
    from benchmarks.step_meter import LightningMeter

    class SlowLastBatch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == trainer.max_steps:
                time.sleep(0.5)

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            if batch_idx == 0:  # a one-off first-step cost (a compile) is reported apart
                time.sleep(0.4)
            return self.w(batch["input_ids"].float()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = [{"input_ids": torch.ones(2, dtype=torch.long)} for _ in range(6)]
    loader = torch.utils.data.DataLoader(data, batch_size=1)
    out = tmp_path / "meter.json"
    meter = LightningMeter(str(out), pad_id=0, warmup=0)
    trainer = L.Trainer(
        max_steps=5,
        callbacks=[SlowLastBatch(), meter],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(), loader)
    result = json.loads(out.read_text())
    assert trainer.callbacks[0] is meter
    assert result["steps"] == 5
    assert max(result["step_times"]) < 0.25, result["step_times"]
    assert result["first_step_s"] >= 0.4
    assert result["peak_gpu_mb"] is None  # no CUDA here
