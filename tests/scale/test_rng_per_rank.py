"""Each rank's random streams travel in the checkpoint and come back to that rank."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import random, sys, numpy as np, torch, torch.distributed as dist
    from chimed_lit.callbacks.rng_state import RNGStateCallback

    def run(rank, path):
        dist.init_process_group("gloo", rank=rank, world_size=2)
        torch.manual_seed(100 + rank); random.seed(rank); np.random.seed(rank)
        state = RNGStateCallback().state_dict()          # what the checkpoint holds
        want = (torch.rand(3), random.random(), np.random.rand())
        if rank == 0:
            torch.save(state, path)                     # rank 0 writes, as Lightning does
        dist.barrier()
        torch.manual_seed(7); random.seed(7); np.random.seed(7)   # a fresh process, in effect
        cb = RNGStateCallback()
        cb.load_state_dict(torch.load(path, weights_only=True))
        cb.on_train_start(None, None)
        got = (torch.rand(3), random.random(), np.random.rand())
        assert torch.equal(got[0], want[0]) and got[1:] == want[1:], (rank, got, want)
        assert len(torch.load(path, weights_only=True)["ranks"]) == 2
        dist.destroy_process_group()

    if __name__ == "__main__":
        torch.multiprocessing.spawn(run, args=(sys.argv[1],), nprocs=2)
        print("OK")
""")


def test_two_ranks_each_get_their_own_rng_streams_back(tmp_path):
    script = tmp_path / "rng.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29651")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "state.pt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-4000:]
