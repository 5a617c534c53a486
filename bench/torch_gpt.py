#!/usr/bin/env python3
"""PyTorch reference for bench/gpt_bench.lua: the same GPT as engram.nn.gpt (pre-LN blocks, causal
self-attention from one Linear(dim, 3 dim), GELU (tanh form) feed-forward of 4 dim, LayerNorm eps 1e-5, a
separate output head without bias, no dropout), trained with cross-entropy over every position and Adam
(lr 1e-3) on synthetic token batches. Prints one line per setting:

    torch dim=D batch=B ctx=T threads=N tokens_per_s=S

(the best of --steps timed steps after a warm-up). torch 1.13 has no fused attention, so the attention is
written as nanoGPT writes it without flash attention: q k^T scaled, masked_fill(-inf), softmax, times v.

Usage: python3 bench/torch_gpt.py [--dims 128,512] [--threads 1,2] [--batch 16] [--ctx 128] [--steps 8]
Prints "torch unavailable" (exit 0) when torch cannot be imported.
"""
import argparse
import ctypes
import math
import time

try:
    import torch
    import torch.nn.functional as F
except Exception:  # noqa: BLE001 - any import failure means "not installed"
    print("torch unavailable")
    raise SystemExit(0)


def set_blas_threads(n):
    """torch.set_num_threads sets torch's own threads; Debian's torch may also call the system OpenBLAS."""
    for name in ("libopenblas.so.0", "libblas.so.3"):
        try:
            ctypes.CDLL(name).openblas_set_num_threads(n)
            return True
        except (OSError, AttributeError):
            pass
    return False


class Attention(torch.nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)
        q = q.view(B, T, self.heads, D // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, D // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, D // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D // self.heads))
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        return self.proj((att @ v).transpose(1, 2).contiguous().view(B, T, D))


class Block(torch.nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = torch.nn.LayerNorm(dim)
        self.fc = torch.nn.Linear(dim, 4 * dim)
        self.out = torch.nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self, vocab, ctx, dim, heads, layers):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Embedding(ctx, dim)
        self.blocks = torch.nn.Sequential(*[Block(dim, heads) for _ in range(layers)])
        self.ln = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, vocab, bias=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.tok(ids) + self.pos(torch.arange(T, device=ids.device))
        return self.head(self.ln(self.blocks(x))).view(-1, self.head.out_features)


def run(dim, batch, ctx, threads, steps, vocab=256, heads=4, layers=4):
    torch.set_num_threads(threads)
    set_blas_threads(threads)
    torch.manual_seed(1)
    model = GPT(vocab, ctx, dim, heads, layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids = torch.randint(0, vocab, (batch, ctx))
    target = torch.randint(0, vocab, (batch * ctx,))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(ids), target)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return batch * ctx / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", default="128,512")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    for dim in [int(v) for v in a.dims.split(",")]:
        for n in [int(v) for v in a.threads.split(",")]:
            tps = run(dim, a.batch, a.ctx, n, a.steps)
            print("torch dim=%d batch=%d ctx=%d threads=%d tokens_per_s=%.0f" % (dim, a.batch, a.ctx, n, tps),
                  flush=True)


if __name__ == "__main__":
    main()
