"""Randomly generated programs through the fusion executor against eager, on the CPU and on CUDA where
present, with what the first generator (test_fusion_random.py) leaves out: views of computed values
(slices put back together with cat, reshapes to a 3-D view and back, flips of the row dim), detached
values, one-hot row sums (the pattern of nll_loss's gradient), cross-entropy's per-row losses,
log_softmax gathered at computed indices, cumulative and masked fills. Forward values and gradients;
each program comes from a seed, so a failure names a reproducible case."""

from __future__ import annotations

import functools
import random

import pytest
import torch
import torch.nn.functional as F
from random_programs import check_forward, check_gradients, seeded_inputs

import thunder
from thunder.executors import fusionex

CUDA = torch.cuda.is_available() and fusionex.available("cuda")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs CUDA, its driver and NVRTC"))]

FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fusion_random_views", min_cpu_numel=0))

KINDS = ["unary", "binary", "binary", "slice_cat", "reshape3d", "flip", "detach", "one_hot_sum", "ce_rows",
         "gather_logp", "masked_fill", "row_max_index"]


# Training programs also draw dropout masks inside their kernels (fuse_random=True): of a computed
# value, and of a transposed one (its numbers indexed along the other axis).
GRAD_KINDS = KINDS + ["dropout", "dropout_t"]


def _program(seed, kinds=KINDS):
    rng = random.Random(seed)
    steps = []
    n_values = 3  # the inputs a, b, c
    for _ in range(rng.randint(3, 10)):
        kind = rng.choice(kinds)
        pick = functools.partial(rng.randrange, n_values)
        if kind == "unary":
            steps.append((kind, rng.randrange(4), pick()))
        elif kind == "binary":
            steps.append((kind, rng.randrange(4), pick(), pick()))
        elif kind in ("slice_cat", "reshape3d"):
            steps.append((kind, pick(), pick(), rng.randrange(1, 4)))
        else:
            steps.append((kind, pick(), pick()))
        n_values += 1
    outs = sorted({rng.randrange(3, n_values) for _ in range(rng.randint(1, 3))})
    return steps, outs


UNARY = [torch.tanh, torch.sigmoid, lambda t: t * 0.5 - 0.25, torch.sin]
BINARY = [torch.add, torch.mul, torch.sub, lambda a, b: torch.where(a > b, a, b * 0.5)]


def _run(steps, outs, a, b, c, targets):
    vals = [a, b, c]
    rows, cols = a.shape
    for s in steps:
        kind = s[0]
        if kind == "unary":
            vals.append(UNARY[s[1]](vals[s[2]]))
        elif kind == "binary":
            vals.append(BINARY[s[1]](vals[s[2]], vals[s[3]]))
        elif kind == "slice_cat":  # a computed value's column blocks, scaled apart and put back
            x, y, k = vals[s[1]], vals[s[2]], s[3] * cols // 4
            vals.append(torch.cat([x[:, :k] * 2, torch.tanh(x[:, k:])], 1) + y)
        elif kind == "reshape3d":  # a 3-D view of a computed value, reduced over its middle dim
            x, y, g = vals[s[1]], vals[s[2]], 2 ** s[3]
            if rows % g:
                g = 1
            m = (x * 1.5).reshape(rows // g, g, cols).sum(1, keepdim=True)
            vals.append((m.expand(rows // g, g, cols).reshape(rows, cols) * 0.1).tanh() + y)
        elif kind == "flip":  # the rows of a computed value in reverse order
            vals.append(torch.flip(vals[s[1]] * 0.5, [0]) + vals[s[2]])
        elif kind == "detach":
            vals.append(torch.tanh(vals[s[1]]).detach() * vals[s[2]])
        elif kind == "one_hot_sum":  # nll_loss's gradient summed over the row, at fixed targets
            x, y = vals[s[1]], vals[s[2]]
            oh = torch.where(torch.arange(cols, device=x.device) == targets[:, None], x.amax(1, keepdim=True), 0.0)
            vals.append(oh.sum(1, keepdim=True) * y - oh)
        elif kind == "ce_rows":  # per-row losses broadcast back over the row
            x, y = vals[s[1]], vals[s[2]]
            loss = F.cross_entropy(x, targets, reduction="none")
            vals.append(y * torch.tanh(loss * 0.1)[:, None])
        elif kind == "gather_logp":  # log-probabilities gathered at an index computed from values
            x, y = vals[s[1]], vals[s[2]]
            idx = (torch.sigmoid(y[:, :1]) * (cols - 1)).to(torch.int64)
            g = torch.log_softmax(x, 1).gather(1, idx)
            vals.append(x * 0.5 + g * 0.1)
        elif kind == "dropout":
            vals.append(F.dropout(torch.tanh(vals[s[1]]), 0.3, training=True) + vals[s[2]])
        elif kind == "dropout_t":
            vals.append(F.dropout(vals[s[1]].t() * 2, 0.2, training=True).t() * vals[s[2]])
        elif kind == "masked_fill":
            x, y = vals[s[1]], vals[s[2]]
            vals.append(x.masked_fill(y > 0.5, 0.25) * 2)
        else:  # row_max_index: where each row's maximum is, compared with an iota
            x, y = vals[s[1]], vals[s[2]]
            hit = torch.arange(cols, device=x.device) == x.argmax(1, keepdim=True)
            vals.append(torch.where(hit, y, y * 0.5))
    return tuple(vals[i] for i in outs)


SHAPES = [(48, 64), (40, 40), (6, 1030)]


def _inputs(seed, device, shape):
    gen, a, b, c = seeded_inputs(seed, device, shape)
    targets = torch.randint(0, shape[1], (shape[0],), generator=gen).to(device)
    targets[0] = -100  # an ignored row
    return gen, a, b, c, targets


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(30))
def test_random_view_program_matches_eager(seed, device, shape):
    steps, outs = _program(seed)
    _, a, b, c, targets = _inputs(seed, device, shape)

    def fn(a, b, c):
        return _run(steps, outs, a, b, c, targets)

    check_forward(fn, (a, b, c), device, FUSE_ALL, f"seed {seed}, {steps}, {outs}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(10))
def test_random_view_program_with_dropout_matches_eager_without_grad(seed, device):
    # fuse_random without grad: the masks are drawn in the kernels, eager draws the same numbers.
    steps, outs = _program(2000 + seed, GRAD_KINDS)
    shape = SHAPES[seed % len(SHAPES)]
    _, a, b, c, targets = _inputs(seed, device, shape)

    def fn(a, b, c):
        return _run(steps, outs, a, b, c, targets)

    check_forward(fn, (a, b, c), device, FUSE_ALL, f"seed {seed}, {steps}, {outs}", fuse_random=True)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(20))
def test_random_view_program_gradients_match_eager(seed, device, shape):
    steps, outs = _program(1000 + seed, GRAD_KINDS)
    gen, a, b, c, targets = _inputs(seed, device, shape)
    cots = [torch.randn(shape, generator=gen).to(device) for _ in outs]

    def loss(a, b, c):
        return sum((o * g).sum() for o, g in zip(_run(steps, outs, a, b, c, targets), cots))

    check_gradients(loss, (a, b, c), FUSE_ALL, f"seed {seed}, {steps}, {outs}", fuse_random=True)
