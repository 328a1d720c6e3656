"""Lightning's private API is touched in one module only, and each touch works in a real Trainer.

`chimed_lit.plugins.lightning_internals` is the seam; the functions' tests below run a tiny model
through a real Trainer (the strategy ones in a subprocess, so no process group outlives the test),
so a Lightning upgrade that moves an internal fails here, by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from chimed_lit.plugins import lightning_internals as li
from tests.architecture.import_graph import ROOT, source_files
from tests.architecture.lightning_privates import problems

SEAM = "chimed_lit.plugins.lightning_internals"


# ----- the source tree: only the seam touches Lightning's privates ------------------------------
def test_no_module_but_the_seam_touches_a_private_lightning_api():
    found = {
        f"{path.relative_to(ROOT)}: {p}"
        for name, path in source_files().items()
        if name != SEAM
        for p in problems(path.read_text(), name)
    }
    assert sorted(found) == []


def test_the_seam_is_where_the_touches_are():
    """The reader sees the seam's own touches: it would see them anywhere else too."""
    seam = problems(Path(li.__file__).read_text(), SEAM)
    for what in (
        ".fit_loop",
        ".optim_step_progress",
        "trainer._accelerator_connector",
        "strategy._init_deepspeed_distributed",
        "strategy._data_parallel_size",
        "trainer._logger_connector",
        "fit_loop._data_fetcher",
    ):
        assert any(what in p for p in seam), what


def test_the_reader_flags_each_kind_of_touch():
    source = textwrap.dedent(
        """
        import lightning as L
        from lightning.pytorch.strategies import DDPStrategy
        from lightning.pytorch.utilities._pytree import _tree_flatten
        from lightning.pytorch.loops import _FitLoop
        from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

        class Backend(DDPStrategy):
            def _get_process_group_backend(self):
                return self._process_group_backend or super()._get_process_group_backend()

            def _mine(self):  # our own private name: fine
                return self._cache

        class Guard(L.Callback):
            def on_train_start(self, trainer, pl_module):
                trainer._accelerator_connector
                trainer.fit_loop.epoch_loop.batch_progress
                DDPStrategy._setup_distributed(trainer.strategy)
                self._seen = trainer.global_step  # public, and a private name of our own
        """
    )
    found = "\n".join(problems(source, "example"))
    for what in (
        "internal module lightning.pytorch.utilities._pytree",
        "private lightning.pytorch.utilities._pytree._tree_flatten",
        "internal module lightning.pytorch.loops",
        "internal module lightning.pytorch.trainer.connectors.signal_connector",
        "Backend overrides Lightning's _get_process_group_backend",
        "Backend uses Lightning's _process_group_backend",
        "Backend uses Lightning's _get_process_group_backend",
        "reads trainer._accelerator_connector",
        "internal loop attribute .fit_loop",
        "internal loop attribute .batch_progress",
        "reads lightning.pytorch.strategies.DDPStrategy._setup_distributed",
    ):
        assert what in found, what
    assert "_mine" not in found and "_cache" not in found and "_seen" not in found


# ----- each seam function in a real Trainer -----------------------------------------------------
def _trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kwargs,
    )


def _loader(batches: int = 8) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batches * 2, 4, generator=g), torch.randn(batches * 2, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=2)


class Tiny(L.LightningModule):
    """A linear regression; with `updates` > 0 it steps its raw optimizer that many times per
    trainer step (as PPO does), calling the seam as told."""

    def __init__(self, updates: int = 0, hooks: bool = False, count: bool = False, nan_at=None):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.automatic_optimization = updates == 0
        self.updates, self.hooks, self.count, self.nan_at = updates, hooks, count, nan_at
        self.steps_run = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.automatic_optimization:
            return torch.nn.functional.mse_loss(self.layer(x), y)
        self.steps_run += 1
        opt = self.raw = self.optimizers().optimizer  # the raw torch optimizer: not counted
        for _ in range(self.updates):
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            if self.nan_at == batch_idx:
                loss = loss * float("nan")
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            if self.hooks:
                li.run_before_optimizer_step_hooks(self.trainer, self, opt)
            opt.step()
        if self.count:
            li.count_optimizer_step(self.trainer)
        return None  # manual optimization: Lightning steps nothing itself

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_batches_processed_counts_finished_batches_of_the_current_pass(tmp_path):
    seen: list[tuple[str, int, int]] = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(("start", batch_idx, li.batches_processed(trainer)))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(("end", batch_idx, li.batches_processed(trainer)))

    _trainer(tmp_path, max_epochs=2, callbacks=[Record()]).fit(Tiny(), _loader(4))
    # not yet counted when a batch starts, counted by its end; a new pass starts from zero
    expected = [
        (w, i, i + (w == "end")) for _ in range(2) for i in range(4) for w in ("start", "end")
    ]
    assert seen == expected


def test_count_optimizer_step_makes_one_trainer_step_of_many_updates(tmp_path):
    counted = Tiny(updates=3, count=True)
    trainer = _trainer(tmp_path, max_steps=5, max_epochs=1)
    trainer.fit(counted, _loader(8))
    assert (trainer.global_step, counted.steps_run) == (5, 5)  # max_steps read our count

    uncounted = Tiny(updates=3, count=False)
    trainer = _trainer(tmp_path, max_steps=5, max_epochs=1)
    trainer.fit(uncounted, _loader(8))
    assert (trainer.global_step, uncounted.steps_run) == (0, 8)  # raw steps are invisible


def test_before_optimizer_step_hooks_see_each_update_and_may_drop_it(tmp_path):
    from chimed_lit.callbacks.nonfinite import NonFiniteGuard

    seen: list[tuple[int, bool]] = []

    class Record(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            grads = [p.grad for g in optimizer.param_groups for p in g["params"]]
            seen.append((id(optimizer), all(g is not None for g in grads)))

    module = Tiny(updates=2, hooks=True, count=True, nan_at=1)
    guard = NonFiniteGuard(policy="skip")
    trainer = _trainer(tmp_path, max_steps=3, callbacks=[Record(), guard])
    trainer.fit(module, _loader(8))
    assert seen == [(id(module.raw), True)] * 6  # 3 steps x 2 updates, gradients in place
    assert guard.skipped == 2  # step 1's two NaN updates were dropped by the guard
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_cluster_environment_is_the_one_lightning_detected(tmp_path, monkeypatch):
    from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

    from chimed_lit.callbacks.preemption import PreemptionCheckpoint

    seen = []

    class Record(L.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.append(li.cluster_environment(trainer))

    for var in [v for v in os.environ if v.startswith("SLURM_")]:
        monkeypatch.delenv(var)
    trainer = _trainer(tmp_path, max_steps=1, callbacks=[Record()])
    trainer.fit(Tiny(), _loader(2))
    assert isinstance(seen[0], LightningEnvironment)

    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "7"}
    slurm |= {"SLURM_NODELIST": "node1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
    for k, v in (slurm | {"SLURM_NODEID": "0", "SLURM_NTASKS_PER_NODE": "1"}).items():
        monkeypatch.setenv(k, v)
    trainer = _trainer(tmp_path, max_steps=1, callbacks=[Record()])
    trainer.fit(Tiny(), _loader(2))
    env = seen[1]
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue
    # single device: the strategy has no cluster environment of its own, the seam still answers
    assert getattr(trainer.strategy, "cluster_environment", None) is None
    assert PreemptionCheckpoint._lightning_requeues(trainer)


def test_slurm_requeue_handlers_are_lightnings_in_the_training_loop(tmp_path, monkeypatch):
    """Under SLURM auto-requeue, with chimed-lit's process-wide handlers installed, the training
    loop runs with Lightning's own SLURM handlers (save + requeue on SIGUSR1, SIGTERM noted and
    bypassed), and the process-wide ones are back after fit."""
    import signal

    from chimed_lit.callbacks.preemption import PreemptionCheckpoint
    from chimed_lit.io import signals

    seen = {}

    class Look(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.update({s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGTERM)})

    for var in [v for v in os.environ if v.startswith("SLURM_")]:
        monkeypatch.delenv(var)
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "7"}
    slurm |= {"SLURM_NODELIST": "node1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
    for k, v in (slurm | {"SLURM_NODEID": "0", "SLURM_NTASKS_PER_NODE": "1"}).items():
        monkeypatch.setenv(k, v)
    with signals.handling():
        preemption = PreemptionCheckpoint(dirpath=str(tmp_path))
        trainer = _trainer(tmp_path, max_steps=1, callbacks=[preemption, Look()])
        trainer.fit(Tiny(), _loader(2))
        usr1 = seen[signal.SIGUSR1].signal_handlers
        assert [h.__name__ for h in usr1] == ["_slurm_sigusr_handler_fn"]
        term = seen[signal.SIGTERM].signal_handlers
        assert [h.__name__ for h in term] == ["_sigterm_notifier_fn", "_sigterm_handler_fn"]
        for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            assert signals.is_ours(signal.getsignal(sig))


# ----- the validation due at a restored step -----------------------------------------------------
class ValTiny(Tiny):
    """`Tiny` with a validation loss, logged once per validation pass."""

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))


class Validations(L.pytorch.loggers.Logger):
    """A logger keeping (logging step, val_loss) of every validation pass that reaches it."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[int, float]] = []

    @property
    def name(self):
        return "validations"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        if "val_loss" in metrics:
            self.rows.append((step, metrics["val_loss"]))


class Killed(Exception):
    pass


class KillAt(L.Callback):
    """Raise (a kill, for what is on disk) at the start of the fit's validation after step `at`
    (`where="validation"`), or at the start of the training batch after step `at`."""

    def __init__(self, at: int, where: str):
        self.at, self.where = at, where

    def on_validation_start(self, trainer, pl_module):
        fit = trainer.state.fn == "fit"
        if self.where == "validation" and fit and trainer.global_step == self.at:
            raise Killed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.where == "train" and trainer.global_step == self.at:
            raise Killed


class OnResume(L.Callback):
    """At train start: asks the seam whether the restored step's validation is skipped, and
    with `run=True` runs it through the seam."""

    def __init__(self, run: bool):
        self.run, self.skipped = run, None

    def on_train_start(self, trainer, pl_module):
        self.skipped = li.restored_validation_is_skipped(trainer)
        if self.run and self.skipped:
            li.run_fit_validation(trainer)


def _val_fit(tmp_path: Path, name: str, *callbacks, every: int = 3, ckpt=None):
    """Fit `ValTiny` 6 steps on epochs of 3 batches (a plain loader resumes exactly only at an
    epoch's end), validating every 3, checkpointing every `every` steps; returns the logged
    validations and the checkpoints folder."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    torch.manual_seed(0)
    dirpath = tmp_path / name
    saver = ModelCheckpoint(dirpath=dirpath, every_n_train_steps=every, save_top_k=-1)
    log = Validations()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=log,
        callbacks=[saver, *callbacks],
        max_steps=6,
        val_check_interval=3,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with contextlib.suppress(Killed):
        trainer.fit(ValTiny(), _loader(3), _loader(2), ckpt_path=ckpt)
    return log.rows, dirpath


def _ckpt(dirpath: Path, step: int) -> str:
    (path,) = dirpath.glob(f"*step={step}.ckpt")
    return str(path)


def test_restored_validation_is_skipped_and_can_be_run_once(tmp_path):
    """A checkpoint written at the end of step 3, where a validation was due, and a run killed
    before that validation: Lightning's resume never runs it (the seam says so); run through
    the seam at train start it is logged once, at the step and with the value of a run never
    interrupted, and the loops' counters end as Lightning's own resume leaves them."""
    straight, _ = _val_fit(tmp_path, "straight")
    assert [s for s, _ in straight] == [2, 5]  # logging steps of the validations after 3 and 6

    killed, ckpts = _val_fit(tmp_path, "killed", KillAt(3, "validation"))
    assert killed == []  # the step-3 checkpoint is on disk, its validation never finished
    plain = OnResume(run=False)
    rows, unfixed = _val_fit(tmp_path, "plain", plain, ckpt=_ckpt(ckpts, 3))
    assert plain.skipped and [s for s, _ in rows] == [5]  # Lightning's resume: step 3's lost

    fixed = OnResume(run=True)
    rows, resumed = _val_fit(tmp_path, "fixed", fixed, ckpt=_ckpt(ckpts, 3))
    assert fixed.skipped
    assert [s for s, _ in rows] == [2, 5]
    assert [v for _, v in rows] == pytest.approx([v for _, v in straight], abs=1e-7)
    # the loops' counters at step 6 are those of Lightning's own resume (which differ from an
    # uninterrupted run's in the epoch and validation counters: not ours to change)
    want = torch.load(_ckpt(unfixed, 6), weights_only=False)["loops"]
    got = torch.load(_ckpt(resumed, 6), weights_only=False)["loops"]
    assert got == want


def test_resumed_at_max_steps_no_training_hook_runs(tmp_path):
    """Killed in the validation after the last step and resumed from that step's checkpoint: the
    fit loop is done at once, `on_train_start` is never called and nothing is validated inside
    fit (the runner's final `Trainer.validate` reports those weights)."""
    _, ckpts = _val_fit(tmp_path, "killed", KillAt(6, "validation"))
    late = OnResume(run=True)
    rows, _ = _val_fit(tmp_path, "resumed", late, ckpt=_ckpt(ckpts, 6))
    assert late.skipped is None and rows == []


def test_restored_validation_not_due_or_already_run_is_not_skipped(tmp_path):
    """No validation due at the checkpoint's step (step 2), a fresh fit, and a checkpoint written
    after the step's validation (Lightning's restart "on last"): nothing is skipped."""
    _, ckpts = _val_fit(tmp_path, "every2", KillAt(3, "train"), every=2)
    not_due = OnResume(run=False)
    _val_fit(tmp_path, "not_due", not_due, ckpt=_ckpt(ckpts, 2))
    assert not_due.skipped is False

    fresh = OnResume(run=False)
    _val_fit(tmp_path, "fresh", fresh)
    assert fresh.skipped is False

    class SaveAfterValidation(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            if trainer.state.fn == "fit" and trainer.global_step == 3:
                trainer.save_checkpoint(tmp_path / "after_val.ckpt")

    _val_fit(tmp_path, "after", SaveAfterValidation(), KillAt(4, "train"))
    after = OnResume(run=False)
    rows, _ = _val_fit(tmp_path, "after_resumed", after, ckpt=str(tmp_path / "after_val.ckpt"))
    assert after.skipped is False and [s for s, _ in rows] == [5]


# ----- the strategy internals, in a subprocess ----------------------------------------------------
STRATEGY_SCRIPT = """
import json, os, sys
import lightning as L, torch
from torch.utils.data import DataLoader, TensorDataset

class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def configure_model(self):
        s = self.trainer.strategy
        if hasattr(s, "device_mesh"):
            from torch.distributed.fsdp import fully_shard
            fully_shard(self.layer, mesh=s.device_mesh["data_parallel"])
    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

class Record(L.Callback):
    def on_train_start(self, trainer, pl_module):
        s = trainer.strategy
        out = {"backend": torch.distributed.get_backend(), "world": trainer.world_size,
               "rank": trainer.global_rank, "root_device": str(s.root_device)}
        if hasattr(s, "device_mesh"):
            out["mesh"] = dict(zip(s.device_mesh.mesh_dim_names, s.device_mesh.shape))
        with open(os.path.join(sys.argv[1], f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(out, f)

if __name__ == "__main__":
    if sys.argv[2] == "deepspeed":
        from chimed_lit.plugins.deepspeed import deepspeed
        strategy = deepspeed({"train_micro_batch_size_per_gpu": 2}, zero_stage=2)
    else:
        from chimed_lit.plugins.fsdp2 import FSDP2Strategy
        strategy = FSDP2Strategy()
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g))
    L.Trainer(accelerator="cpu", devices=int(sys.argv[3]), strategy=strategy, max_steps=2,
              logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=sys.argv[1],
              callbacks=[Record()]).fit(Tiny(), DataLoader(data, batch_size=2))
"""


def _run_strategy(tmp_path: Path, name: str, devices: int) -> list[dict]:
    script = tmp_path / "fit_tiny.py"
    script.write_text(STRATEGY_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, str(script), str(tmp_path), name, str(devices)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(devices)]


@pytest.mark.slow
def test_deepspeed_on_cpu_sets_up_through_the_seam(tmp_path):
    """`deepspeed_setup_environment_on_cpu`, `deepspeed_setup_distributed_on_cpu`: Lightning's
    DeepSpeed strategy refuses CPU; ours starts a gloo group on `cpu:0` and trains."""
    (rank0,) = _run_strategy(tmp_path, "deepspeed", 1)
    assert rank0 == {"backend": "gloo", "world": 1, "rank": 0, "root_device": "cpu:0"}


@pytest.mark.slow
def test_fsdp2_shards_data_parallel_over_every_process(tmp_path):
    """`shard_over_every_rank`: Lightning's "auto" would make 2 processes on one node a
    tensor-parallel pair; ours is a data-parallel pair."""
    ranks = _run_strategy(tmp_path, "fsdp2", 2)
    assert [r["rank"] for r in ranks] == [0, 1]
    for r in ranks:
        assert r["backend"] == "gloo" and r["world"] == 2
        assert r["mesh"] == {"data_parallel": 2, "tensor_parallel": 1}
