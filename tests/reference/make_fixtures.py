#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that tests/lua/test_reference.lua checks engram against.

Run by hand from the project root with Debian's python3-torch (torch 1.13):

    /usr/bin/python3 tests/reference/make_fixtures.py

It is never part of the build or of `make test`: the fixtures it writes are committed, and the test only reads
them. The output is deterministic (torch.manual_seed per case, one thread), so running it again rewrites the same
bytes.

What a fixture holds. Every case draws its inputs and parameters in float32 (these exact values are what engram is
given), then computes the reference in float64 with torch's own modules, functionals and optimisers, and stores the
results rounded to float32. The float64 pass keeps PyTorch's float32 rounding out of the reference, so a difference
measures engram alone. Layers get a fixed random upstream gradient gy (dL/dy) so that the input gradient and every
parameter gradient are checked, not only a sum. Inputs avoid kinks and ties: activations see no value within 0.05 of
0, max-pooling sees distinct values.

File layout (tests/reference/fixtures/<case>.bin), all little-endian:

    8 bytes   magic b"EGREF1\\n\\0"
    u32       number of tensors n
    n times:
      u32     length L of the name, then L bytes of ASCII name
      u32     number of dimensions d (0 for a scalar), then d u32 sizes
      f32     the prod(sizes) values (1 for a scalar), row-major (C order)

Names: "x" input, "gy" upstream gradient, "y" output, "gx" input gradient, "weight"/"bias" parameters as engram
names them, "grad.weight"/"grad.bias" their gradients, "loss" a loss value, "cfg.*" scalar settings of the case
(stride, padding, a slope, a temperature, optimiser hyper-parameters). Optimiser cases hold, for each step K,
"stepK.grad.weight" (the gradient fed in), "stepK.weight" (the parameter after the step) and "stepK.delta.weight"
(its distance from the start, computed in float64: the update itself, which a float32 parameter would blur); the
same for the bias. The small network case "mlp_cross_entropy" names its parameters as engram's Sequential does
("1.weight", ...) and also holds "flat", all of them in engram's arena order, and "grad.flat". The GPT case
"gpt_tiny" holds "ids", "target", "flat" (every parameter, in engram's arena order), "logits", "loss" and
"grad.flat" (see gpt()).
"""
import os
import struct
import sys

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
MAGIC = b"EGREF1\n\0"
torch.set_num_threads(1)


def write(case, tensors):
    """tensors: list of (name, tensor or number); writes fixtures/<case>.bin."""
    parts = [MAGIC, struct.pack("<I", len(tensors))]
    for name, t in tensors:
        t = torch.as_tensor(t, dtype=torch.float64).detach().to(torch.float32).contiguous()
        nb = name.encode("ascii")
        parts.append(struct.pack("<I", len(nb)) + nb)
        parts.append(struct.pack("<I", t.dim()) + b"".join(struct.pack("<I", s) for s in t.shape))
        parts.append(struct.pack("<%df" % t.numel(), *t.reshape(-1).tolist()))
    path = os.path.join(OUT, case + ".bin")
    with open(path, "wb") as f:
        f.write(b"".join(parts))
    return os.path.getsize(path)


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def d(t):
    """float64 leaf copy of a float32 tensor, with gradients."""
    return t.to(torch.float64).requires_grad_(True)


def away_from_zero(t, gap=0.05):
    return torch.sign(t) * (t.abs() + gap)


def layer_case(case, module, x, cfg=(), with_gx=True):
    """Runs a float64 copy of module on x with a random upstream gradient; writes its parameters (as engram names
    them), output, input gradient and parameter gradients."""
    params = [(n, p.detach().clone()) for n, p in module.named_parameters()]  # float32, what engram gets
    module = module.double()  # exact: the float64 parameters hold the same values
    xd = d(x) if with_gx else x.to(torch.float64)
    y = module(xd)
    gy = randn(*y.shape)
    y.backward(gy.double())
    out = [("x", x)] + list(cfg) + params + [("gy", gy), ("y", y)]
    if with_gx:
        out.append(("gx", xd.grad))
    out += [("grad." + n, p.grad) for n, p in module.named_parameters()]
    return write(case, out)


def layers():
    sizes = {}

    torch.manual_seed(1)  # leading dimensions: engram's Linear takes [..., in]
    lin = torch.nn.Linear(5, 4)
    sizes["linear"] = layer_case("linear", lin, randn(2, 3, 5))

    torch.manual_seed(2)  # stride 2, padding 1, a non-square image
    conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    sizes["conv2d_s2p1"] = layer_case("conv2d_s2p1", conv, randn(2, 3, 7, 6),
                                      cfg=[("cfg.stride", 2), ("cfg.padding", 1)])

    torch.manual_seed(3)  # kernel 4, stride 3, padding 2: windows that do not tile the image, no bias
    conv = torch.nn.Conv2d(2, 3, 4, stride=3, padding=2, bias=False)
    sizes["conv2d_k4s3p2"] = layer_case("conv2d_k4s3p2", conv, randn(1, 2, 8, 9),
                                        cfg=[("cfg.stride", 3), ("cfg.padding", 2)])

    # Max-pooling: distinct values (a permutation), so no window has a tie.
    torch.manual_seed(4)
    x = (torch.randperm(2 * 3 * 6 * 6).to(torch.float32) / 17.0 - 3.0).reshape(2, 3, 6, 6)
    sizes["maxpool2d_k2"] = layer_case("maxpool2d_k2", torch.nn.MaxPool2d(2), x,
                                       cfg=[("cfg.kernel", 2), ("cfg.stride", 2), ("cfg.padding", 0)])
    torch.manual_seed(5)  # overlapping windows (an input can win two) and -inf padding
    x = (torch.randperm(2 * 2 * 7 * 7).to(torch.float32) / 13.0 - 4.0).reshape(2, 2, 7, 7)
    sizes["maxpool2d_k3s2p1"] = layer_case("maxpool2d_k3s2p1", torch.nn.MaxPool2d(3, stride=2, padding=1), x,
                                           cfg=[("cfg.kernel", 3), ("cfg.stride", 2), ("cfg.padding", 1)])

    acts = [
        ("relu", torch.nn.ReLU(), []),
        ("leaky_relu", torch.nn.LeakyReLU(0.2), [("cfg.slope", 0.2)]),
        ("leaky_relu_default", torch.nn.LeakyReLU(), [("cfg.slope", 0.01)]),
        ("tanh", torch.nn.Tanh(), []),
        ("sigmoid", torch.nn.Sigmoid(), []),
        ("gelu_tanh", torch.nn.GELU(approximate="tanh"), []),
        ("softmax", torch.nn.Softmax(dim=-1), []),
        ("log_softmax", torch.nn.LogSoftmax(dim=-1), []),
    ]
    for i, (name, m, cfg) in enumerate(acts):
        torch.manual_seed(10 + i)  # both signs, magnitudes 0.05 .. ~10
        x = away_from_zero(randn(4, 9) * 3)
        sizes[name] = layer_case(name, m, x, cfg=cfg)

    torch.manual_seed(20)  # affine parameters not at their 1/0 start; rows with an offset and a large spread
    ln = torch.nn.LayerNorm(8, eps=1e-5)
    with torch.no_grad():
        ln.weight.copy_(1 + 0.5 * randn(8))
        ln.bias.copy_(0.3 * randn(8))
    x = randn(2, 3, 8) * torch.tensor([0.5, 2.0, 6.0]).reshape(1, 3, 1) + 3.0
    sizes["layernorm"] = layer_case("layernorm", ln, x, cfg=[("cfg.eps", 1e-5)])

    torch.manual_seed(21)  # repeated ids: their gradients accumulate
    emb = torch.nn.Embedding(7, 4)
    ids = torch.tensor([[0, 3, 3, 6, 1], [5, 3, 0, 2, 3]], dtype=torch.float32)
    sizes["embedding"] = layer_case("embedding", _Ids(emb), ids, with_gx=False)
    return sizes


class _Ids(torch.nn.Module):
    """Embedding fed with float ids (engram's convention); parameters named as engram names them."""

    def __init__(self, emb):
        super().__init__()
        self.weight = emb.weight

    def forward(self, ids):
        return F.embedding(ids.long(), self.weight)


def losses():
    sizes = {}

    def loss_case(case, fn, x, target, cfg=(), extra=()):
        xd = d(x)
        loss = fn(xd, target.to(torch.float64))
        loss.backward()
        return write(case, [("x", x), ("target", target)] + list(cfg) + list(extra) +
                     [("loss", loss), ("gx", xd.grad)])

    # Cross-entropy: mean over the batch of logsumexp(x) - x[label].
    torch.manual_seed(30)
    x = randn(6, 5) * 2
    labels = torch.tensor([0, 4, 2, 2, 1, 3], dtype=torch.float32)
    sizes["cross_entropy"] = loss_case("cross_entropy", lambda a, t: F.cross_entropy(a, t.long()), x, labels)

    # Active classes: engram treats the inactive ones as logits of -inf (so they get gradient exactly 0, and
    # the softmax is over the active ones); reproduced with masked_fill. The mask is stored as "active" (C
    # values, 1 active). Inactive logits are made large, so that leaving them in would show.
    torch.manual_seed(31)
    x = randn(5, 7) * 2
    active = torch.tensor([0, 1, 0, 1, 1, 0, 1], dtype=torch.float32)
    x[:, active == 0] += 4.0
    labels = torch.tensor([1, 3, 6, 4, 1], dtype=torch.float32)

    def masked_ce(a, t):
        return F.cross_entropy(a.masked_fill(active.bool().logical_not(), float("-inf")), t.long())
    sizes["cross_entropy_active"] = loss_case("cross_entropy_active", masked_ce, x, labels,
                                              extra=[("active", active)])

    torch.manual_seed(32)
    x, t = randn(3, 4, 2), randn(3, 4, 2)
    sizes["mse"] = loss_case("mse", F.mse_loss, x, t)

    torch.manual_seed(33)
    x, t = randn(4, 3) * 3, torch.rand(4, 3)
    sizes["bce_with_logits"] = loss_case("bce_with_logits", F.binary_cross_entropy_with_logits, x, t)

    # Distillation: T^2 * KL(softmax(teacher/T) || softmax(student/T)) summed over classes and averaged over
    # the batch (kl_div's "batchmean"), gradient w.r.t. the student only. With active classes both softmaxes
    # run over the active columns only, and the other columns get gradient 0 (index_select's backward).
    def kl(T, cols=None):
        def fn(s, t):
            if cols is not None:
                s, t = s.index_select(1, cols), t.index_select(1, cols)
            return F.kl_div(F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1), log_target=True,
                            reduction="batchmean") * T * T
        return fn
    torch.manual_seed(34)
    s, t = randn(4, 6) * 2, randn(4, 6) * 2
    sizes["kl_distill_T2"] = loss_case("kl_distill_T2", kl(2.0), s, t, cfg=[("cfg.T", 2.0)])
    torch.manual_seed(35)
    s, t = randn(4, 6) * 2, randn(4, 6) * 2
    active = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.float32)
    sizes["kl_distill_T4_active"] = loss_case("kl_distill_T4_active", kl(4.0, active.nonzero().reshape(-1)), s, t,
                                              cfg=[("cfg.T", 4.0)], extra=[("active", active)])
    return sizes


def network():
    """Linear(6,5) -> Tanh -> LayerNorm(5) -> Linear(5,3) -> cross-entropy: the chain rule across modules, and
    engram's flat arena loaded whole (load_flat)."""
    torch.manual_seed(50)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.LayerNorm(5), torch.nn.Linear(5, 3))
    with torch.no_grad():
        net[2].weight.copy_(1 + 0.5 * randn(5))
        net[2].bias.copy_(0.3 * randn(5))
    x = randn(4, 6) * 2
    labels = torch.tensor([2, 0, 1, 2], dtype=torch.float32)
    # engram's Sequential numbers modules from 1; torch's from 0
    params = [("%d.%s" % (int(n.split(".")[0]) + 1, n.split(".")[1]), p.detach().clone())
              for n, p in net.named_parameters()]
    net = net.double()
    xd = d(x)
    loss = F.cross_entropy(net(xd), labels.long())
    loss.backward()
    grads = [("grad." + name, p.grad) for (name, _), p in zip(params, net.parameters())]
    flat = torch.cat([p.reshape(-1) for _, p in params])
    gflat = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    return {"mlp_cross_entropy": write("mlp_cross_entropy", [("x", x), ("target", labels)] + params +
                                       [("flat", flat), ("loss", loss), ("gx", xd.grad)] + grads +
                                       [("grad.flat", gflat)])}


def gpt():
    """A 2-layer GPT as engram.nn.gpt builds it (vocab 11, ctx 8, dim 16, 2 heads, hidden 64, separate head
    without bias): token + position embeddings, pre-LN blocks (LayerNorm eps 1e-5, causal attention from one
    Linear(16, 48) split q | k | v, scores scaled by 1/sqrt(8), softmax, output Linear; LayerNorm, Linear(16, 64),
    gelu(approximate="tanh"), Linear(64, 16); both residual), final LayerNorm, head. Parameters are drawn away from
    their initial values (matrices N(0, 0.2^2), biases N(0, 0.1^2), LayerNorm weights 1 + N(0, 0.1^2),
    embeddings N(0, 0.5^2)) and stored as "flat" in engram's arena order; "logits" [B*T, 11], "loss" the mean
    cross-entropy over all B*T positions, "grad.flat" every parameter's gradient in the same order."""
    torch.manual_seed(60)
    V, C, D, H, L, B, T = 11, 8, 16, 2, 2, 3, 7
    hd = D // H

    def mat(*shape):
        return randn(*shape) * 0.2

    def vec(n, one=False):
        return (1.0 if one else 0.0) + randn(n) * 0.1

    # engram's arena order: 1 token, 2 position, 4.<k>.{1 ln1, 2.1 qkv, 2.2 proj, 3 ln2, 4.1 fc, 4.3 fc2}, 5 ln, 6 head
    params = [("1.weight", randn(V, D) * 0.5), ("2.weight", randn(C, D) * 0.5)]
    for k in range(1, L + 1):
        b = "4.%d." % k
        params += [(b + "1.weight", vec(D, True)), (b + "1.bias", vec(D)),
                   (b + "2.1.weight", mat(3 * D, D)), (b + "2.1.bias", vec(3 * D)),
                   (b + "2.2.weight", mat(D, D)), (b + "2.2.bias", vec(D)),
                   (b + "3.weight", vec(D, True)), (b + "3.bias", vec(D)),
                   (b + "4.1.weight", mat(4 * D, D)), (b + "4.1.bias", vec(4 * D)),
                   (b + "4.3.weight", mat(D, 4 * D)), (b + "4.3.bias", vec(D))]
    params += [("5.weight", vec(D, True)), ("5.bias", vec(D)), ("6.weight", mat(V, D))]
    ids = torch.randint(0, V, (B, T)).to(torch.float32)
    target = torch.randint(0, V, (B * T,)).to(torch.float32)
    P = {n: d(t) for n, t in params}

    def ln(x, n):
        return F.layer_norm(x, (D,), P[n + ".weight"], P[n + ".bias"], eps=1e-5)

    x = P["1.weight"][ids.long()] + P["2.weight"][torch.arange(T)]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for k in range(1, L + 1):
        b = "4.%d." % k
        qkv = F.linear(ln(x, b + "1"), P[b + "2.1.weight"], P[b + "2.1.bias"])
        q, kk, v = (t.reshape(B, T, H, hd).transpose(1, 2) for t in qkv.split(D, dim=2))
        att = (q @ kk.transpose(-2, -1)) / (hd ** 0.5)
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(y, P[b + "2.2.weight"], P[b + "2.2.bias"])
        h = F.gelu(F.linear(ln(x, b + "3"), P[b + "4.1.weight"], P[b + "4.1.bias"]), approximate="tanh")
        x = x + F.linear(h, P[b + "4.3.weight"], P[b + "4.3.bias"])
    logits = F.linear(ln(x, "5"), P["6.weight"]).reshape(B * T, V)
    loss = F.cross_entropy(logits, target.long())
    loss.backward()
    flat = torch.cat([t.reshape(-1) for _, t in params])
    gflat = torch.cat([P[n].grad.reshape(-1) for n, _ in params])
    cfg = [("cfg.vocab", V), ("cfg.ctx", C), ("cfg.dim", D), ("cfg.heads", H), ("cfg.layers", L)]
    return {"gpt_tiny": write("gpt_tiny", cfg + [("ids", ids), ("target", target), ("flat", flat),
                                                 ("logits", logits), ("loss", loss), ("grad.flat", gflat)])}


def optimiser_case(case, make, cfg, steps=3, clip=None):
    """Three steps of torch's optimiser on a Linear(4, 3)'s weight and bias from fixed gradients. Gradient
    magnitudes spread over three decades (10^-3 .. 1), so Adam's eps matters for some elements. With clip, the
    gradients are clipped to that joint norm first (clip_grad_norm_) and "stepK.grad_norm" is their norm before."""
    w, b = randn(3, 4), randn(3)
    pw, pb = d(w), d(b)
    opt = make([pw, pb])
    out = [("weight", w), ("bias", b)] + [("cfg." + k, v) for k, v in cfg]
    for k in range(1, steps + 1):
        gw = randn(3, 4) * 10 ** (-3 * torch.rand(3, 4))
        gb = randn(3) * 10 ** (-3 * torch.rand(3))
        pw.grad, pb.grad = gw.double(), gb.double()
        if clip is not None:
            out.append(("step%d.grad_norm" % k, torch.nn.utils.clip_grad_norm_([pw, pb], clip)))
        opt.step()
        out += [("step%d.grad.weight" % k, gw), ("step%d.grad.bias" % k, gb),
                ("step%d.weight" % k, pw.detach().clone()), ("step%d.bias" % k, pb.detach().clone()),
                ("step%d.delta.weight" % k, pw.detach() - w.double()),
                ("step%d.delta.bias" % k, pb.detach() - b.double())]
    return write(case, out)


def optimisers():
    sizes = {}
    O = torch.optim
    cases = [
        ("sgd_weight_decay", lambda p: O.SGD(p, lr=0.1, weight_decay=0.05),
         [("lr", 0.1), ("momentum", 0), ("dampening", 0), ("nesterov", 0), ("weight_decay", 0.05)]),
        ("sgd_momentum", lambda p: O.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.05),
         [("lr", 0.1), ("momentum", 0.9), ("dampening", 0.1), ("nesterov", 0), ("weight_decay", 0.05)]),
        ("sgd_nesterov", lambda p: O.SGD(p, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05),
         [("lr", 0.1), ("momentum", 0.8), ("dampening", 0), ("nesterov", 1), ("weight_decay", 0.05)]),
        ("adam", lambda p: O.Adam(p, lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1),
         [("lr", 0.05), ("beta1", 0.8), ("beta2", 0.95), ("eps", 1e-3), ("weight_decay", 0.1)]),
        ("adamw", lambda p: O.AdamW(p, lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1),
         [("lr", 0.05), ("beta1", 0.8), ("beta2", 0.95), ("eps", 1e-3), ("weight_decay", 0.1)]),
    ]
    for i, (case, make, cfg) in enumerate(cases):
        torch.manual_seed(40 + i)
        sizes[case] = optimiser_case(case, make, cfg)
    torch.manual_seed(45)  # clipping to a joint norm of 0.5: the norms are 0.53 to 1.23, every step clips
    sizes["sgd_momentum_clip"] = optimiser_case(
        "sgd_momentum_clip", lambda p: O.SGD(p, lr=0.1, momentum=0.9), clip=0.5,
        cfg=[("lr", 0.1), ("momentum", 0.9), ("dampening", 0), ("nesterov", 0), ("weight_decay", 0), ("clip", 0.5)])
    return sizes


def main():
    print("torch", torch.__version__, file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    sizes = {}
    sizes.update(layers())
    sizes.update(losses())
    sizes.update(network())
    sizes.update(gpt())
    sizes.update(optimisers())
    for case, n in sorted(sizes.items()):
        print("%-24s %6d bytes" % (case, n))
    print("%-24s %6d bytes" % ("total", sum(sizes.values())))


if __name__ == "__main__":
    main()
