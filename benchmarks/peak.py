"""The matmul peak MFU is measured against: a loop of square torch.mm in this run's process
setup (same threads, same dtype), best of a few rounds. Usage: python -m benchmarks.peak DTYPE N"""

from __future__ import annotations

import json
import sys
import time


def matmul_peak(
    dtype: str = "float32", n: int = 1024, seconds: float = 2.0, device: str = "cpu"
) -> float:
    """FLOP/s of the best round of repeated n x n x n matmuls (2 n^3 FLOPs each)."""
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(n, n, dtype=dt, device=device)
    b = torch.randn(n, n, dtype=dt, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        torch.mm(a, b)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        sync()
        t0 = time.perf_counter()
        for _ in range(5):
            torch.mm(a, b)
        sync()
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - t0))
    return best


if __name__ == "__main__":
    dtype, n, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(json.dumps({"flops": matmul_peak(dtype, n, device=device)}))
