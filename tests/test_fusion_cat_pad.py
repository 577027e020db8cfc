"""cat, constant pad and slices of computed values inside fused kernels: indexing, not copies.

A cat no later operation of its kernel reads is written in parts (each part stored at its place in
the cat's tensor where the kernel computes it); a cat the kernel reads has its operands (views of
inputs or values computed from them element-wise) computed from loads padded to the whole cat dim,
and an index along the dim selects the part. A constant pad is a load
that reads its fill value outside the input (or, of a computed value, the fill selected outside).
A slice of a computed value is the value computed from loads sliced alike. Rotary embeddings'
`cat((-x2, x1), -1)` (and its backward's slices and pads) and a pad before strided windows each fuse
into one kernel.
Values against eager on the CPU, and on CUDA where it exists.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.executors import fusionex

requires_compiler = pytest.mark.skipif(not fusionex.available("cpu"), reason="no C++ compiler")

# Every size fused (CPU regions under a size threshold are otherwise left to torch).
FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fusion_cat_pad_all", min_cpu_numel=0))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() and fusionex.available("cuda") else [])


def _jit(fn):
    return thunder.jit(fn, executors=[FUSE_ALL])


def _torch_cat(jfn) -> bool:
    """Whether the final trace runs a cat outside the fused kernels (as torch.cat or torchex.cat)."""
    trace = str(thunder.last_traces(jfn)[-1])
    return any(line.lstrip().split("=", 1)[-1].strip().startswith(("torch.cat(", "torchex.cat("))
               for line in trace.splitlines() if not line.lstrip().startswith("#"))


def _one_kernel(jfn):
    """The final trace runs one fused region and no torch cat or pad."""
    trace = str(thunder.last_traces(jfn)[-1])
    assert len(fusionex.fusion_kernels(jfn)) == 1, trace
    assert not _torch_cat(jfn), trace
    assert "torch.nn.functional.pad(" not in trace and "torchex.pad(" not in trace, trace


def rope(q, cos, sin):
    half = q.shape[-1] // 2
    rot = torch.cat((-q[..., half:], q[..., :half]), dim=-1)
    return q * cos + rot * sin


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [64, 6])
def test_rotary_embedding_is_one_kernel(device, dtype, head_dim):
    torch.manual_seed(0)
    q = torch.randn(2, 4, 33, head_dim, device=device, dtype=dtype)
    cos = torch.randn(33, head_dim, device=device, dtype=dtype)
    sin = torch.randn(33, head_dim, device=device, dtype=dtype)
    jfn = _jit(rope)
    torch.testing.assert_close(jfn(q, cos, sin), rope(q, cos, sin))
    _one_kernel(jfn)
    assert " padded " in fusionex.fusion_kernels(jfn)[0].kernel_ir


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
def test_rotary_embedding_gradients(device):
    torch.manual_seed(0)
    q = torch.randn(2, 3, 16, 8, device=device, requires_grad=True)
    cos = torch.randn(16, 8, device=device)
    sin = torch.randn(16, 8, device=device)
    g = torch.randn(2, 3, 16, 8, device=device)
    jfn = _jit(rope)
    out = jfn(q, cos, sin)
    (dq,) = torch.autograd.grad(out, q, g)
    ref = rope(q, cos, sin)
    (dq_ref,) = torch.autograd.grad(ref, q, g)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(dq, dq_ref)
    # The backward's slices of g * sin, padded back and added: one kernel too.
    assert len(thunder.last_backward_traces(jfn)[-1].fusion_callables) == 1


def _cat_used_twice(a, b):
    t = torch.cat((a, b), -2)
    return t * 2 + t.exp()


def _chunks_multiplied(x):
    a, b = (x * 2).chunk(2, -1)
    return a * b.sigmoid()


CATS = [
    ("last dim, three parts", lambda a, b, c: torch.cat((a, b * 2, c.exp()), -1), [(3, 5, 4), (3, 5, 3), (3, 5, 1)]),
    ("first dim", lambda a, b: torch.cat((a.sin(), b), 0) + 1, [(2, 7), (5, 7)]),
    ("middle dim", lambda a, b: torch.cat((a, b), 1).relu(), [(2, 3, 8), (2, 1, 8)]),
    ("an empty part", lambda a, b, c: torch.cat((a, b, c), -1) * 3, [(4, 5), (4, 0), (4, 2)]),
    ("one part", lambda a: torch.cat((a * 2,), 0) - 1, [(6, 3)]),
    ("of a broadcast value", lambda a, w: torch.cat((a, a * w), -1) * 2, [(5, 6), (6,)]),
    ("used twice", _cat_used_twice, [(3, 4), (2, 4)]),
    ("then transposed", lambda a, b: torch.cat((a, b), 0).t() * 2, [(3, 4), (5, 4)]),
    ("of one tensor twice", lambda a: torch.cat((a, a), 0) * 2, [(3, 4)]),
    ("of transposed parts", lambda a, b: torch.cat((a.t(), b.t() + 1), 0) * 2, [(3, 4), (3, 2)]),
    ("of a column broadcast along the dim", lambda a: torch.cat((a[:, :1].expand(3, 3), a * 2), -1) + 1, [(3, 4)]),
    # Functions written with cat and slices.
    ("stack, last dim", lambda a: torch.stack((a.sin(), a.cos()), -1) * 2, [(4, 6)]),
    ("stack, first dim", lambda a: torch.stack((a, a * 2, a.exp()), 0) + 1, [(4, 6)]),
    ("roll", lambda a: torch.roll(a.exp(), 2, 1) + a, [(4, 6)]),
    ("chunks swapped", lambda a: torch.cat(a.tanh().chunk(2, -1)[::-1], -1), [(4, 6)]),
    ("hstack", lambda a: torch.hstack((a.relu(), a)) * 3, [(4, 6)]),
]


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,fn,shapes", CATS, ids=[c[0] for c in CATS])
def test_cat_fused(device, name, fn, shapes):
    torch.manual_seed(0)
    args = [torch.randn(s, device=device) for s in shapes]
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(*args), fn(*args))
    assert not _torch_cat(jfn), str(thunder.last_traces(jfn)[-1])
    assert len(fusionex.fusion_kernels(jfn)) == 1, str(thunder.last_traces(jfn)[-1])


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.float16])
def test_cat_and_pad_of_other_dtypes(device, dtype):
    def fn(a, b):
        c = torch.cat((a, b), -1)
        return F.pad(c, (1, 2), value=1) == F.pad(b, (1, c.shape[-1] - b.shape[-1] + 2), value=0)

    a = torch.randint(0, 3, (4, 3), device=device).to(dtype)
    b = torch.randint(0, 3, (4, 5), device=device).to(dtype)
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(a, b), fn(a, b))


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
def test_cat_of_channels_last_inputs(device):
    torch.manual_seed(0)
    a = torch.randn(2, 3, 5, 6, device=device).to(memory_format=torch.channels_last)
    b = torch.randn(2, 4, 5, 6, device=device).to(memory_format=torch.channels_last)

    def fn(a, b):
        return torch.cat((a.relu(), b * 2), 1) + 1

    jfn = _jit(fn)
    out, ref = jfn(a, b), fn(a, b)
    torch.testing.assert_close(out, ref)
    # Written in the parts' memory format, as eager's cat writes it.
    assert ref.is_contiguous(memory_format=torch.channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last) and out.stride() == ref.stride()
    assert not _torch_cat(jfn)


PADS = [
    ("last dim", lambda x: F.pad(x, (2, 3)) * 2, (4, 5), None),
    ("two dims, a value", lambda x: F.pad(x, (1, 1, 2, 0), value=0.5) + 1, (2, 3, 4, 5), None),
    ("-inf", lambda x: F.pad(x, (1, 1, 1, 1), value=float("-inf")).exp(), (2, 3, 4), None),
    ("of a computed value", lambda x: F.pad(x.relu() - 1, (3, 1), value=1.5) * x.sum(), (3, 6), None),
    ("of a computed value, two dims", lambda x: F.pad(x.sigmoid(), (1, 2, 1, 0), value=-2.0) + 1, (2, 3, 4), None),
    ("bf16 fill rounded", lambda x: F.pad(x, (1, 1), value=0.1) * 3, (3, 8), torch.bfloat16),
    ("odd sizes", lambda x: F.pad(x, (3, 1, 0, 2)) - x.mean(), (3, 7, 5), None),
    ("a NaN fill", lambda x: F.pad(x, (1, 1), value=float("nan")) + 1, (3, 4), None),
    ("of a column broadcast along the padded dim", lambda x: F.pad(x[:, :1].expand(3, 5), (2, 1), value=4.0) * 2,
     (3, 4), None),
    ("unsqueezed, then sliced", lambda x: F.pad(x, (1, 2), value=3.0).unsqueeze(0)[..., 1:6:2] * 2, (4, 5), None),
    ("squeezed", lambda x: F.pad(x, (0, 0, 1, 1), value=-1.0).squeeze(-1) + 1, (2, 3, 1), None),
    ("a one-element dim in the padding", lambda x: F.pad(x, (0, 0, 2, 0), value=7.0)[1:2] * x, (2, 3), None),
]


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,fn,shape,dtype", PADS, ids=[p[0] for p in PADS])
def test_constant_pad_fused(device, name, fn, shape, dtype):
    torch.manual_seed(0)
    x = torch.randn(shape, device=device, dtype=dtype or torch.float32)
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(x), fn(x), equal_nan=True)
    trace = str(thunder.last_traces(jfn)[-1])
    assert "torchex.pad" not in trace and "torch.nn.functional.pad" not in trace, trace


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pad_then_strided_windows(device, dtype):
    # A 3x3 stride-2 max pool written out: the input padded with -inf, nine strided windows, their
    # maximum and the first window that holds it; one kernel.
    def pool(x):
        p = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        wins = [p[..., i:i + 2 * h:2, j:j + 2 * w:2] for i in range(3) for j in range(3)]
        m = wins[0]
        for v in wins[1:]:
            m = torch.maximum(m, v)
        return m

    torch.manual_seed(0)
    # Negative values: a window over the padding must not see anything above -inf there.
    x = -torch.rand(2, 3, 8, 10, device=device, dtype=dtype) - 0.5
    jfn = _jit(pool)
    out = jfn(x)
    torch.testing.assert_close(out, pool(x))
    torch.testing.assert_close(out, F.max_pool2d(x, 3, 2, 1))
    _one_kernel(jfn)


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
def test_cat_beside_a_reduction(device):
    # A reduction kernel does not read padded loads: the cat's kernel ends before the sum.
    torch.manual_seed(0)
    a, b = torch.randn(4, 6, device=device), torch.randn(4, 2, device=device)

    def fn(a, b):
        c = torch.cat((a.exp(), b), -1)
        return c.softmax(-1), c * 2

    jfn = _jit(fn)
    for got, want in zip(jfn(a, b), fn(a, b)):
        torch.testing.assert_close(got, want)
    assert not _torch_cat(jfn), str(thunder.last_traces(jfn)[-1])


SLICES = [
    ("strided", lambda x: (x.exp() * 2)[:, 1:5:2] + 1, (4, 7)),
    ("every third of the last dim", lambda x: x.relu()[..., ::3] * 2, (3, 4, 10)),
    ("chunks multiplied", _chunks_multiplied, (5, 12)),
    ("two dims", lambda x: (x.tanh() + 1)[1:, 2:7:2] - 3, (4, 9)),
    ("to one element", lambda x: (x * 3)[:, 4:5] + x, (3, 6)),
    ("before a row sum", lambda x: (x * 2)[:, :5].sum(-1), (6, 9)),
    ("before a softmax", lambda x: x.exp()[:, 2:].softmax(-1), (6, 9)),
]


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,fn,shape", SLICES, ids=[c[0] for c in SLICES])
def test_slice_of_a_computed_value_is_indexing(device, name, fn, shape):
    # The sliced value is computed from loads sliced alike: no kernel writes it whole.
    torch.manual_seed(0)
    x = torch.randn(shape, device=device)
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(x), fn(x))
    assert len(fusionex.fusion_kernels(jfn)) == 1, str(thunder.last_traces(jfn)[-1])


@requires_compiler
def test_cat_with_nan_and_inf_selects_not_mixes():
    # Each position takes its own part's value: an operand's inf or NaN never leaks into another part.
    a = torch.tensor([[float("inf"), 1.0], [float("nan"), 2.0]])
    b = torch.tensor([[3.0], [float("-inf")]])

    def fn(a, b):
        return torch.cat((a * 2, b.exp()), -1)

    jfn = _jit(fn)
    torch.testing.assert_close(jfn(a, b), fn(a, b), equal_nan=True)


@requires_compiler
def test_a_cat_of_many_parts_read_later_is_written_in_parts():
    # A cat read by the kernel computing it has each part computed at every position (four parts at
    # most); eight parts are written in parts by the kernel computing them, and read by the next.
    def fn(x):
        return torch.cat([x * i for i in range(8)], -1).exp()

    x = torch.randn(3, 4)
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(x), fn(x))
    assert not _torch_cat(jfn), str(thunder.last_traces(jfn)[-1])
    first, second = fusionex.fusion_kernels(jfn)
    assert first.kernel_ir.count("(part at ") == 8 and " padded " not in first.kernel_ir
    assert " padded " not in second.kernel_ir


@requires_compiler
def test_a_cat_alone_is_left_to_torch():
    # Nothing to compute: torch's cat copies at memory speed.
    def fn(a, b):
        return torch.cat((a, b[:, 1:]), -1)

    a, b = torch.randn(4, 3), torch.randn(4, 5)
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(a, b), fn(a, b))
    assert not fusionex.fusion_kernels(jfn)


def _small_gpt_trains_like_eager(**config):
    """A 2-layer benchmarks/gpt_model.py GPT (with `config`) jitted with the default executors: one
    training step's loss and every gradient against eager's. Returns the config and the jitted model."""
    import copy
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from gpt_model import GPT, GPTConfig, WithLoss

    torch.manual_seed(0)
    cfg = GPTConfig(block_size=32, vocab_size=256, n_layer=2, n_head=4, n_embd=64, **config)
    model = WithLoss(GPT(cfg))
    jmodel = thunder.jit(copy.deepcopy(model))
    idx, tgt = torch.randint(0, 256, (2, 32)), torch.randint(0, 256, (2, 32))
    ref = model(idx, tgt)
    ref.backward()
    loss = jmodel(idx, tgt)
    loss.backward()
    torch.testing.assert_close(loss, ref)
    for (name, p), q in zip(model.named_parameters(), jmodel.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    return cfg, jmodel


@requires_compiler
def test_llama_style_model_trains_like_eager_without_torch_cat():
    # benchmarks/gpt_model.py's Llama blocks (RMSNorm, rotary embeddings by torch.cat, SwiGLU): loss
    # and every gradient as eager's, and no cat left to torch in the forward.
    cfg, jmodel = _small_gpt_trains_like_eager(bias=False, llama=True, mlp_hidden=176)
    assert not _torch_cat(jmodel), str(thunder.last_traces(jmodel)[-1])
    # In the backward, q, k and v's gradients are written into their join by the rotary backward's
    # kernel, and the SwiGLU halves' gradients into theirs by the kernel computing them (beside the
    # product the down projection's weight gradient reads): no cat is left to torch.
    backward = [line for line in str(thunder.last_backward_traces(jmodel)[-1]).splitlines()
                if not line.lstrip().startswith("#")]
    cats = [line for line in backward if "torchex.cat(" in line or "torch.cat(" in line]
    assert not cats, cats
    irs = [k.kernel_ir for k in thunder.last_backward_traces(jmodel)[-1].fusion_callables]
    swiglu = [ir for ir in irs if "(part at 176 along dim 2 of out1)" in ir]
    assert len(swiglu) == cfg.n_layer, irs


def _swiglu_backward(h, g):
    # SwiGLU's backward: the gate and up halves' gradients joined as their projection's, and the
    # product the down projection's weight gradient reads.
    a, b = h.chunk(2, -1)
    s = torch.sigmoid(a)
    silu = a * s
    da = g * b * s * (1 + a * (1 - s))
    return silu * b, torch.cat((da, g * silu), -1)


CATS_IN_PARTS = [
    # (name, fn, inputs, parts)
    ("swiglu backward", _swiglu_backward, lambda dev, dt: (torch.randn(3, 5, 64, device=dev, dtype=dt),
                                                           torch.randn(3, 5, 32, device=dev, dtype=dt)), 2),
    ("odd halves", _swiglu_backward, lambda dev, dt: (torch.randn(3, 2, 10, device=dev, dtype=dt),
                                                      torch.randn(3, 2, 5, device=dev, dtype=dt)), 2),
    # Along the first dim and a middle one; a part read from an input (a slice of it), one a
    # broadcast row; transposed inputs.
    ("dim 0", lambda x, y: torch.cat((x * 2, y.exp(), x[:, :7] * 0 + y), 0),
     lambda dev, dt: (torch.randn(4, 7, device=dev, dtype=dt), torch.randn(4, 7, device=dev, dtype=dt)), 3),
    ("middle dim", lambda x, w: torch.cat((x.transpose(1, 2) + 1, w.expand(2, 3, 6) * 3), 1),
     lambda dev, dt: (torch.randn(2, 6, 3, device=dev, dtype=dt), torch.randn(6, device=dev, dtype=dt)), 2),
    ("stacked", lambda x, y: torch.stack((x + y, x * y, x - y, x / 2, y / 2), 1),
     lambda dev, dt: (torch.randn(5, 16, device=dev, dtype=dt), torch.randn(5, 16, device=dev, dtype=dt)), 5),
    # channels_last parts along the channels: a channels_last cat, as eager's.
    ("channels_last", lambda x, y: torch.cat((x.relu(), y * 2), 1),
     lambda dev, dt: tuple(torch.randn(2, 3, 4, 5, device=dev, dtype=dt).to(memory_format=torch.channels_last)
                           for _ in range(2)), 2),
    # An empty part takes no place.
    ("empty part", lambda x, e: torch.cat((x.sin(), e * 2, x.cos()), -1),
     lambda dev, dt: (torch.randn(4, 8, device=dev, dtype=dt), torch.randn(4, 0, device=dev, dtype=dt)), 2),
]


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name,fn,make,parts", CATS_IN_PARTS, ids=[c[0] for c in CATS_IN_PARTS])
def test_a_cat_no_later_operation_reads_is_written_in_parts(device, dtype, name, fn, make, parts):
    # Each part stored into the cat's tensor where the kernel computes it (no part computed at every
    # position, no padded load), the cat's tensor as eager's (values and strides).
    torch.manual_seed(0)
    args = make(device, dtype)
    jfn = _jit(fn)
    got, ref = jfn(*args), fn(*args)
    torch.testing.assert_close(got, ref)
    for g, r in zip(got if isinstance(got, tuple) else (got,), ref if isinstance(ref, tuple) else (ref,)):
        assert g.stride() == r.stride()
    _one_kernel(jfn)
    (kernel,) = fusionex.fusion_kernels(jfn)
    assert kernel.kernel_ir.count("(part at ") == parts and " padded " not in kernel.kernel_ir, kernel.kernel_ir


@requires_compiler
def test_a_cat_written_in_parts_trains_like_eager():
    # Gradients flow through a cat written in parts (the backward slices the cat's gradient).
    h = torch.randn(4, 6, 48, requires_grad=True)
    g = torch.randn(4, 6, 24, requires_grad=True)
    jfn = _jit(_swiglu_backward)
    out = jfn(h, g)
    ref_h, ref_g = h.detach().clone().requires_grad_(), g.detach().clone().requires_grad_()
    ref = _swiglu_backward(ref_h, ref_g)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b)
    gs = [torch.randn_like(r) for r in ref]
    torch.autograd.backward(out, gs)
    torch.autograd.backward(ref, gs)
    torch.testing.assert_close(h.grad, ref_h.grad)
    torch.testing.assert_close(g.grad, ref_g.grad)


def _heads_joined(q, k, v, cos):
    # Attention's q, k and v gradients joined as a qkv projection's: each [B, H, T, D] transposed to
    # [B, T, H, D], its heads merged, the three concatenated along the features.
    b, h, t, d = q.shape
    parts = [(q * cos).transpose(1, 2), (k * 2).transpose(1, 2), v.transpose(1, 2)]
    return torch.cat([p.reshape(b, t, h * d) for p in parts], -1)


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cat_of_merged_heads_is_one_kernel_and_a_view(device, dtype):
    # The cat of reshapes is a cat along a new dim, [B, T, 3, H, D], reshaped: one kernel computes the
    # parts where the cat is written, the reshape to [B, T, 3 * H * D] is a view of it.
    q, k, v = (torch.randn(2, 4, 16, 8, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    cos = torch.randn(16, 8, device=device, dtype=dtype)
    jfn = _jit(_heads_joined)
    out = jfn(q, k, v, cos)
    ref_inputs = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    ref = _heads_joined(*ref_inputs, cos)
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous()
    _one_kernel(jfn)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    for got, want in zip((q, k, v), ref_inputs):
        torch.testing.assert_close(got.grad, want.grad)
    with torch.profiler.profile() as prof:
        jfn(q, k, v, cos)
    assert not {"aten::copy_", "aten::clone", "aten::cat"} & {e.name for e in prof.events()}


def _views_joined(q, k, v):
    # GPT-2's join: attention's q, k and v gradients with nothing left to compute, only transposed,
    # merged and concatenated.
    b, h, t, d = q.shape
    return torch.cat([p.transpose(1, 2).reshape(b, t, h * d) for p in (q, k, v)], -1)


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cat_of_transposed_parts_is_one_kernel(device, dtype):
    # Nothing to compute, but torch's cat would copy each transposed part on its own (a strided copy
    # each): one kernel writes the cat, [B, T, 3, H, D], and the merge to [B, T, 3 * H * D] is a view.
    q, k, v = (torch.randn(2, 4, 16, 8, device=device, dtype=dtype) for _ in range(3))
    jfn = _jit(_views_joined)
    out = jfn(q, k, v)
    torch.testing.assert_close(out, _views_joined(q, k, v), rtol=0, atol=0)
    assert out.is_contiguous()
    _one_kernel(jfn)
    (kernel,) = fusionex.fusion_kernels(jfn)
    assert kernel.kernel_ir.count("(part at ") == 3, kernel.kernel_ir
    # A non-contiguous part (a slice of a wider tensor) read through its strides: as eager's.
    q2 = torch.randn(2, 4, 16, 12, device=device, dtype=dtype)[..., 2:10]
    torch.testing.assert_close(jfn(q2, k, v), _views_joined(q2, k, v), rtol=0, atol=0)


TRANSPOSED_CATS = [
    # (name, fn, shapes): parts transposed, of unequal sizes (padded loads), with an empty part (one
    # part left), computed or only moved; eager's result is contiguous whatever its parts' layout.
    ("unequal", lambda a, b: torch.cat([a.t(), b.t()], 1), [(7, 5), (3, 5)]),
    ("unequal computed", lambda a, b: torch.cat([a.t().sin(), b.t() * 2], 1), [(7, 5), (3, 5)]),
    ("empty part", lambda a, b: torch.cat([a.t(), b.t()], 1), [(3, 4), (0, 4)]),
    ("empty part computed", lambda a, b: torch.cat([a.t().sin(), b.t() * 2], 1), [(3, 4), (0, 4)]),
    ("one element", lambda a, b: torch.cat([a.t(), b.t()], 0), [(1, 1), (1, 1)]),
    ("odd widths", lambda a, b: torch.cat([a.transpose(1, 2), b.transpose(1, 2)], -1), [(3, 33, 17), (3, 33, 17)]),
]


@requires_compiler
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
@pytest.mark.parametrize("name,fn,shapes", TRANSPOSED_CATS, ids=[c[0] for c in TRANSPOSED_CATS])
def test_cat_of_transposed_parts_has_eagers_values_and_strides(device, dtype, name, fn, shapes):
    if "computed" in name and dtype in (torch.int64, torch.bool):
        pytest.skip("sin of an integer or bool tensor is a float tensor: not a cat of its dtype")
    torch.manual_seed(0)
    args = [(torch.randn(s, device=device) * 4).to(dtype) for s in shapes]
    jfn = _jit(fn)
    got, ref = jfn(*args), fn(*args)
    exact = {} if "computed" in name else {"rtol": 0, "atol": 0}  # sin: within an ulp of eager's
    torch.testing.assert_close(got, ref, **exact)
    assert got.stride() == ref.stride(), (got.stride(), ref.stride())


@requires_compiler
def test_gpt2_style_model_joins_qkv_gradients_in_one_kernel():
    # benchmarks/gpt_model.py's GPT-2 blocks: loss and every gradient as eager's, and the backward's
    # join of q, k and v's gradients is a fused kernel, not torch's cat.
    cfg, jmodel = _small_gpt_trains_like_eager(dropout=0.0)
    backward = [line for line in str(thunder.last_backward_traces(jmodel)[-1]).splitlines()
                if not line.lstrip().startswith("#")]
    cats = [line for line in backward if "torchex.cat(" in line or "torch.cat(" in line]
    assert not cats, cats
    irs = [k.kernel_ir for k in thunder.last_backward_traces(jmodel)[-1].fusion_callables]
    assert sum(ir.count("(part at ") == 3 for ir in irs) == cfg.n_layer, irs


@requires_compiler
def test_a_reduction_after_a_cat_of_merged_heads_reads_its_view():
    # A bias gradient summed over the joined gradients (GPT-2's qkv projection): the sum's kernel
    # reads the cat's view; it does not write the cat a second time.
    def fn(q, k, v, cos):
        joined = _heads_joined(q, k, v, cos)
        return joined, joined.float().sum((0, 1))

    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
    cos = torch.randn(16, 8)
    jfn = _jit(fn)
    for got, want in zip(jfn(q, k, v, cos), fn(q, k, v, cos)):
        torch.testing.assert_close(got, want)
    lines = [line for line in str(thunder.last_traces(jfn)[-1]).splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    fused = [line for line in lines if "= fusion" in line]
    assert len(fused) == 2, lines
    assert sum("[2, 16, 96]" in line.split("#", 1)[-1] for line in fused) == 0, fused
    assert any("torch.reshape(" in line for line in lines), lines
