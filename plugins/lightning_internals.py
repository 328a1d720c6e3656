"""Every use of Lightning's private or internal API, in one file: where a Lightning upgrade looks.

No other module of the project reads a private Lightning attribute, calls a private method,
overrides one, or imports from an internal module: tests/architecture/test_lightning_seam.py
reads the source tree and fails when one does, and runs each function below in a real Trainer.

"lightning 2.5-2.6" below: run with 2.6.6 (installed) and read unchanged in 2.5.0's source;
pyproject.toml allows >=2.5,<2.7 (widen it only after that test and tests/scale pass on the new
version). Each function names the public API that would replace it, should Lightning grow one.

Overrides of public but internal strategy methods, which change what Lightning does:
- `plugins/deepspeed.py` `ChimedDeepSpeedStrategy`: `setup_environment` and `setup_distributed`
  on CPU (through `deepspeed_setup_environment_on_cpu` and `deepspeed_setup_distributed_on_cpu`
  below), `root_device` (`cpu:0` on CPU: DeepSpeed reads the device index), `init_deepspeed`
  (to write the JSON DeepSpeed ran with; it calls Lightning's first).
- `plugins/fsdp2.py` `FSDP2Strategy`: `setup_environment` (through `shard_over_every_rank`).
Designed away: the process-group backend (gloo on CPU, nccl on CUDA) is Lightning's default for
the root device, so neither strategy overrides `_get_process_group_backend` any more.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


def batches_processed(trainer: L.Trainer) -> int:
    """Training batches finished in the current pass over the data (the resumable loader's
    position; saved in checkpoints and restored by Lightning).

    Reads `trainer.fit_loop.epoch_loop.batch_progress.current.processed` (internal loop state;
    lightning 2.5-2.6). Public near-equivalent: `batch_idx + 1` inside `on_train_batch_end`; there
    is no public counter that is right at every moment a checkpoint can be written."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


def count_optimizer_step(trainer: L.Trainer) -> None:
    """Count one trainer step under manual optimization, for a module that steps its raw
    optimizers itself, possibly many times per step (PPO: one rollout is one step).

    `trainer.global_step`, `max_steps` and checkpoint frequency read this counter
    (`fit_loop.epoch_loop.manual_optimization.optim_step_progress`; lightning 2.5-2.6). Public
    replacement: `LightningOptimizer.step()` (from `self.optimizers()`) counts every call as a
    step, so it fits only a module with one optimizer update per trainer step."""
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()


def run_before_optimizer_step_hooks(
    trainer: L.Trainer, module: L.LightningModule, optimizer: torch.optim.Optimizer
) -> None:
    """Call every callback's `on_before_optimizer_step`, as Lightning does before it steps an
    optimizer itself (the non-finite guard checks, and may drop, an update there).

    Mirrors `Precision._after_closure` (lightning 2.5-2.6), minus the module's own hook and the
    gradient clipping, which our modules do not use under manual optimization. Public
    replacement: `LightningOptimizer.step()`, which runs these hooks but also counts a step
    (see `count_optimizer_step`)."""
    for callback in trainer.callbacks:
        callback.on_before_optimizer_step(trainer, module, optimizer)


def cluster_environment(trainer: L.Trainer) -> Any:
    """The cluster environment Lightning detected (SLURM, torchelastic, local...), for every
    strategy, single-device ones included.

    Reads `trainer._accelerator_connector.cluster_environment` (lightning 2.5-2.6), which is what
    Lightning's own signal handling reads. Public near-equivalent:
    `trainer.strategy.cluster_environment`, which only parallel strategies have."""
    return trainer._accelerator_connector.cluster_environment


def slurm_requeue_handlers(trainer: L.Trainer) -> dict[int, Any]:
    """The SIGTERM and requeue-signal handlers Lightning sets under SLURM auto-requeue when the
    process has no handler of its own (save `hpc_ckpt_<n>.ckpt` and `scontrol requeue` on
    SIGUSR1; note and bypass SIGTERM). chimed-lit installs process-wide handlers
    (`io/signals.py`), and with one in place Lightning skips its SIGUSR1 handler and chains ours
    after its SIGTERM one; `PreemptionCheckpoint` sets these for the training loop instead.

    Reads `trainer._signal_connector` and its `_slurm_sigusr_handler_fn`,
    `_sigterm_notifier_fn`, `_sigterm_handler_fn`, and `_HandlersCompose` from
    `lightning.pytorch.trainer.connectors.signal_connector` (lightning 2.5-2.6). No public
    replacement."""
    import signal

    from lightning.pytorch.trainer.connectors.signal_connector import _HandlersCompose

    connector = trainer._signal_connector
    env = cluster_environment(trainer)
    sigusr = getattr(env, "requeue_signal", None) or signal.SIGUSR1
    return {
        sigusr: _HandlersCompose([connector._slurm_sigusr_handler_fn]),
        signal.SIGTERM: _HandlersCompose(
            [connector._sigterm_notifier_fn, connector._sigterm_handler_fn]
        ),
    }


def deepspeed_setup_environment_on_cpu(strategy: Any) -> None:
    """`DeepSpeedStrategy.setup_environment` without its "only supported on CUDA GPUs" check:
    the DDP setup it runs after that check (lightning 2.5-2.6). No public replacement:
    Lightning's DeepSpeed strategy is CUDA-only."""
    from lightning.pytorch.strategies import DDPStrategy

    DDPStrategy.setup_environment(strategy)


def deepspeed_setup_distributed_on_cpu(strategy: Any) -> None:
    """`DeepSpeedStrategy.setup_distributed` without its GPU device-index validation: reset the
    seed, set world ranks, start DeepSpeed's process group (`_init_deepspeed_distributed`;
    lightning 2.5-2.6). No public replacement: Lightning's DeepSpeed strategy is CUDA-only."""
    from lightning.fabric.utilities.seed import reset_seed

    reset_seed()
    strategy.set_world_ranks()
    strategy._init_deepspeed_distributed()


def shard_over_every_rank(strategy: Any) -> None:
    """Make `ModelParallelStrategy(data_parallel_size="auto")` shard data-parallel over every
    process, not over nodes only (Lightning's "auto" is one data-parallel group per node, the
    rest tensor-parallel). Call before Lightning's `setup_environment`.

    Sets the private `_data_parallel_size` (lightning 2.5-2.6), because the world size is known
    only once the Trainer has set up the strategy. Public replacement: an explicit
    `data_parallel_size=<world size>` at construction, when the caller knows the world size."""
    if strategy._data_parallel_size == "auto":
        strategy._data_parallel_size = strategy.num_processes * strategy.num_nodes


def restored_validation_is_skipped(trainer: L.Trainer) -> bool:
    """True when a fit resumed from a checkpoint will not run the validation that was due at the
    restored step: the checkpoint was written at the end of a training batch (as every periodic,
    final and preemption checkpoint is), before the validation after that batch, and Lightning
    then fast-forwards the validation loop's counters past it
    (`_ValidationLoop.increment_progress_to_evaluation_end`) instead of running it. Call from
    `on_train_start`: the checkpoint's loop state is restored and the restart stage is set then.
    (Resumed at `max_steps`, the fit loop is done at once and calls no training hook.)

    Mirrors the test at the top of `_TrainingEpochLoop.advance` (lightning 2.5-2.6): the epoch
    loop is `restarting`, `_should_check_val_fx(fit_loop._data_fetcher)` holds, and the
    validation loop was not `restarted_mid_evaluation` (Lightning reruns that one itself) nor
    the epoch loop `restarted_on_last` (saved after the validation). No public replacement."""
    fit_loop = trainer.fit_loop
    epoch_loop = fit_loop.epoch_loop
    if not epoch_loop.restarting or fit_loop._data_fetcher is None:
        return False
    if epoch_loop.val_loop.restarted_mid_evaluation or epoch_loop.restarted_on_last:
        return False
    return bool(epoch_loop._should_check_val_fx(fit_loop._data_fetcher))


def run_fit_validation(trainer: L.Trainer) -> None:
    """Run the fit's validation loop now, as the training epoch loop runs it after a batch
    (`_TrainingEpochLoop.on_advance_end`; lightning 2.5-2.6): a fresh pass over the validation
    data, metrics logged at the current logging step, `on_validation_*` hooks called. The
    validation loop's progress counters, restart flag and `_has_run` are put back afterwards,
    so Lightning's own restart logic continues exactly as it would have. Call from
    `on_train_start` (the module is in training mode and gets it back).

    Public near-equivalent: `trainer.validate(...)`, which runs another loop (its own progress,
    logged under the validate stage, `trainer.state.fn == "validate"`) and cannot run inside
    `fit`."""
    val_loop = trainer.fit_loop.epoch_loop.val_loop
    saved = val_loop.batch_progress.state_dict()
    restarting, has_run = val_loop.restarting, val_loop._has_run
    first_loop_iter = trainer._logger_connector._first_loop_iter
    trainer.validating = True
    try:
        trainer.lightning_module.on_validation_model_zero_grad()
        val_loop.restarting = False  # a fresh pass: counters from zero, no restart offsets
        val_loop.run()
    finally:
        trainer.training = True
        trainer._logger_connector._first_loop_iter = first_loop_iter
        val_loop.batch_progress.load_state_dict(saved)
        val_loop.restarting, val_loop._has_run = restarting, has_run
