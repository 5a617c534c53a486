#!/usr/bin/env python3
"""PyTorch reference for bench/train_bench.lua: trains mlp{784,400,400,10}
with cross-entropy and plain SGD on synthetic in-memory batches and prints
one line per setting: "torch batch=B threads=T omp=O samples_per_s=S"
(the best window of 2048 samples within --seconds, after a warm-up).

Usage: python3 bench/torch_mlp.py [--batches 16,128,512] [--threads 1,2] [--seconds 1.5]
Prints "torch unavailable" (exit 0) when torch cannot be imported.
"""
import argparse
import ctypes
import time

try:
    import torch
except Exception:  # noqa: BLE001 - any import failure means "not installed"
    print("torch unavailable")
    raise SystemExit(0)


def set_blas_threads(n):
    """torch.set_num_threads sets torch's own (OpenMP) threads only; Debian's
    torch calls the system BLAS (OpenBLAS here), whose threads are separate."""
    for name in ("libopenblas.so.0", "libblas.so.3"):
        try:
            ctypes.CDLL(name).openblas_set_num_threads(n)
            return True
        except (OSError, AttributeError):
            pass
    return False


def run(batch, omp, blas, seconds):
    torch.set_num_threads(omp)
    set_blas_threads(blas)
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 400), torch.nn.ReLU(),
        torch.nn.Linear(400, 400), torch.nn.ReLU(),
        torch.nn.Linear(400, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    lossf = torch.nn.CrossEntropyLoss()
    nb = 32
    xs = [torch.rand(batch, 784) for _ in range(nb)]
    ys = [torch.randint(0, 10, (batch,)) for _ in range(nb)]

    def step(i):
        # torch 1.13's default, set_to_none=False (zeroes the grads in place):
        # its fastest form here; set_to_none=True measured 16,600-17,000
        # samples/s at batch 16 against 22,000-23,300 (2 BLAS threads, 1 omp).
        opt.zero_grad()
        loss = lossf(model(xs[i % nb]), ys[i % nb])
        loss.backward()
        opt.step()

    for i in range(20):
        step(i)
    # Best of windows of 2048 samples, as bench/train_bench.lua.
    chunk = max(2, 2048 // batch)
    n, start, best = 0, time.perf_counter(), float("inf")
    while True:
        t0 = time.perf_counter()
        for _ in range(chunk):
            step(n)
            n += 1
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start >= seconds:
            break
    return chunk * batch / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="16,128,512")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seconds", type=float, default=1.5)
    a = ap.parse_args()
    threads = [int(v) for v in a.threads.split(",")]
    # torch's own threads (OpenMP, element-wise work) and the BLAS threads
    # (the matrix products) are separate settings: try every pair with
    # omp <= blas and report each; "threads" is the BLAS count.
    for b in [int(v) for v in a.batches.split(",")]:
        for t in threads:
            for omp in [o for o in threads if o <= t]:
                sps = run(b, omp, t, a.seconds)
                print(f"torch batch={b} threads={t} omp={omp} samples_per_s={sps:.0f}", flush=True)


if __name__ == "__main__":
    main()
