"""thunder's fusion executor on CUDA: fused regions against eager (pointwise chains with broadcast,
transposed and non-contiguous inputs, edge sizes, every dtype family, NaN/inf, softmax, log_softmax,
layer_norm, rms_norm, cross-entropy forward and backward, bias gradients, rows longer than a block
holds, a pointwise kernel past 2^31 elements), the compile-error path and the on-disk cache across
processes. The first tests need no GPU: they check the CUDA source generator (and, where NVRTC can be
loaded, compile its output) and that the executor stays off CUDA cleanly without a driver."""

from __future__ import annotations

import glob
import logging
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder import _core
from thunder.executors import fusionex

from fusion_patterns import bias_grad, gelu_chain, layer_norm, log_softmax, norm_values_and_grads_match, rms_norm, softmax  # noqa: F401

import cuda_emulator

requires_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and fusionex.available("cuda")), reason="needs CUDA, its driver and NVRTC")
requires_compiler = pytest.mark.skipif(not fusionex.available("cpu"), reason="no C++ compiler")


# Every size fused (CPU regions under a size threshold are otherwise left to torch).
FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fusion_cuda_all", min_cpu_numel=0))


def _jit(fn):
    return thunder.jit(fn, executors=[FUSE_ALL])


def softmax_backward(y, g):
    return y * (g - (g * y).sum(-1, keepdim=True))


def layer_norm_input_grad(x, g, w):
    # d/dx of layer_norm(x) * w against the cotangent g (without eps subtleties: eps = 1e-5 as torch).
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    rstd = torch.rsqrt((xc * xc).mean(-1, keepdim=True) + 1e-5)
    xhat = xc * rstd
    gw = g * w
    return rstd * (gw - gw.mean(-1, keepdim=True) - xhat * (gw * xhat).mean(-1, keepdim=True))


def _args(fn, shape, dtype=torch.float32, device="cpu"):
    x = torch.randn(shape, dtype=dtype, device=device)
    w = torch.randn(shape[-1], dtype=dtype, device=device)
    b = torch.randn(shape[-1], dtype=dtype, device=device)
    return {gelu_chain: (x, w, b), layer_norm: (x, w, b), rms_norm: (x, w)}.get(fn, (x,))


# ---- without a GPU: the generator, NVRTC where it loads, and the executor's availability -----------

SCHEDULES = [(gelu_chain, (33, 1027), "pointwise"), (gelu_chain, (64, 4096), "pointwise"),
             (softmax, (16, 50304), "inner"), (log_softmax, (8, 33), "inner"), (layer_norm, (64, 4096), "inner"),
             (rms_norm, (64, 4096), "inner"), (bias_grad, (64, 4096), "outer"), (bias_grad, (5, 3), "outer")]


KERNEL_PREFIX = {"pointwise": "thunder_pointwise", "inner": "thunder_rows", "outer": "thunder_cols"}


def _kernel_body(src):
    """A generated CUDA source without its prelude of helpers."""
    return src[src.index("typedef int idx_t"):]


def _cuda_sources(fn, args):
    jfn = _jit(fn)
    jfn(*args)
    kernels = fusionex.fusion_kernels(jfn)
    assert kernels, "nothing fused"
    return [(k, *_core.fuser_cuda_source(k)) for k in kernels]


@requires_compiler
@pytest.mark.parametrize("fn,shape,kind", SCHEDULES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_cuda_source_for_each_schedule(fn, shape, kind):
    torch.manual_seed(0)
    ((k, src, grid, block, _),) = _cuda_sources(fn, _args(fn, shape))
    assert k.kernel_ir.startswith(kind)
    # Named after the schedule and the main operations: profiles tell the kernels apart.
    assert 'extern "C" __global__ void __launch_bounds__' in src and f") {KERNEL_PREFIX[kind]}_" in src
    assert grid >= 1 and 32 <= block <= 1024
    if shape[-1] % 4 == 0:  # contiguous float rows: 16-byte accesses, chosen at run time by alignment
        assert "th_ldv<float, 4>" in src
    if kind == "inner" and shape[-1] > 1024:
        assert "th_shfl" in src and "__syncthreads" in src
    if kind == "inner" and shape[-1] <= 128:
        assert "__syncthreads" not in src  # a warp per row


@requires_compiler
def test_cuda_source_of_column_kernels_reads_rows_ahead():
    # A column kernel's thread reads four of its rows into registers before computing any of them
    # (their loads in flight together; H200, GPT-2's gelu backward: 80 -> 67 us).
    torch.manual_seed(0)
    ((k, src, _, _, _),) = _cuda_sources(bias_grad, (torch.randn(512, 4096),))
    assert k.kernel_ir.startswith("outer")
    body = _kernel_body(src)
    body = body[body.index("TH_INLINE void th_cols4"):]
    assert "th_cregs4 R[4];" in body and "R[u].ld" in body
    loads, sums = body.index("th_ldv<float, 4>("), re.search(r"acc\d+\[l\] = acc\d+\[l\] \+", body).start()
    assert loads < body.index("for (int u = 0; u < 4; ++u)", loads) < sums  # all four rows' loads, then the sums


@requires_compiler
def test_cuda_source_of_cross_entropy_gathers_inside_the_row_kernel():
    x, y = torch.randn(16, 1000), torch.randint(0, 1000, (16,))
    sources = _cuda_sources(F.cross_entropy, (x, y))
    assert any("idx_t g" in src for _, src, *_ in sources)
    assert any(") thunder_rows_amax_exp_sum_log(" in src for _, src, *_ in sources)
    # The target's load (in1, read per row) goes out before the row's first reduction, not after the
    # reductions that the gathered logit's loss needs.
    for _, src, *_ in sources:
        for fn in re.findall(r"TH_INLINE void th_rows\d.*?\n}\n", src, re.DOTALL):
            assert "in1[" in fn and fn.index("in1[") < fn.index("th_shfl(")
    # The gathered logit's load goes out after the last pass's loop, before that pass's reductions
    # combine the threads' values (their shuffles and barrier then cover the load's latency), for a
    # row cached in registers (1000 wide) and for one online pass (50304 wide, bf16).
    wide = (torch.randn(4, 50304).bfloat16(), torch.randint(0, 50304, (4,)))
    for fn_, args in ((F.cross_entropy, (x, y)), (lambda a, t: F.cross_entropy(a.float(), t), wide)):
        for _, src, *_ in _cuda_sources(fn_, args):
            for fn in re.findall(r"TH_INLINE void th_rows\d.*?\n}\n", src, re.DOTALL):
                load = re.search(r"const [\w ]+ gl\d+_\d+ = in0\[", fn)
                assert load, fn
                last_loop = max(fn.rfind("for (idx_t q"), fn.rfind("for (int k = 0"))
                assert 0 < last_loop < load.start() < fn.rindex("th_shfl(")


@requires_compiler
def test_cuda_source_takes_exponentials_of_row_excess_from_the_hardware():
    # exp(x - amax(x)) is at most 1: a multiply and the hardware's base-2 exponential, within 2^-21
    # of the exact value. Any other exponential keeps the accurately rounded expf.
    x = torch.randn(16, 1000)
    for fn in (softmax, log_softmax):
        ((_, src, *_),) = _cuda_sources(fn, (x,))
        body = _kernel_body(src)
        assert "th_exp_nonpos(" in body and "expf(" not in body
    ((_, src, *_),) = _cuda_sources(lambda t: torch.exp(t) * 2 + t, (x,))
    body = _kernel_body(src)
    assert "expf(" in body and "th_exp_nonpos(" not in body


def _erf2(t):
    return torch.erf(t) * 2  # exact in bf16/fp16: the erf's rounding is what is compared


def _gelu2(t):
    return F.gelu(t) * 2


@requires_compiler
def test_cuda_source_takes_erf_of_values_rounded_to_half_precision_from_a_cheaper_form():
    # gelu of bf16 values is rounded to bf16, so its erf needs no more precision: th_erf_lp, or where
    # the erf is only added to 1 (gelu), th_erf_as without the small-argument polynomial. gelu of
    # fp16 values takes th_erf_as_lin (th_erf_as, erf's linear term near 0); any other erf of fp16
    # values, an erf read as fp32, or summed, keeps erff.
    x = torch.randn(16, 1000)
    for fn, dtype, form in ((gelu_chain, torch.bfloat16, "th_erf_as("), (gelu_chain, torch.float16, "th_erf_as_lin("),
                            (gelu_chain, torch.float32, "erff("), (_erf2, torch.bfloat16, "th_erf_lp("),
                            (_erf2, torch.float16, "erff("), (_gelu2, torch.float16, "th_erf_as_lin("),
                            (lambda t: (torch.erf(t) + 0.5) * 2, torch.bfloat16, "th_erf_lp("),
                            (lambda t: (torch.erf(t) + 0.5) * 2, torch.float16, "erff("),
                            (lambda t: torch.erf(t.float()) * 3, torch.bfloat16, "erff("),
                            (lambda t: (torch.erf(t.float()) * t.float()).sum(-1), torch.bfloat16, "erff(")):
        args = _args(fn, (16, 1000), dtype) if fn is gelu_chain else (x.to(dtype),)
        for _, src, *_ in _cuda_sources(fn, args):
            body = _kernel_body(src)
            if "erf" in body:
                used = [f for f in ("th_erf_as(", "th_erf_as_lin(", "th_erf_lp(", "erff(") if f in body]
                assert used == [form], (fn, dtype, used)


@requires_compiler
def test_cuda_source_loads_vectors_the_same_in_every_row_once_per_group_of_rows(monkeypatch):
    # bf16 x * w + b of 4M elements: the chunks of w and b are loaded (th_load8) for the first row of
    # a group and reused for the others (th_loadv8 loads x alone). Smaller kernels, fp32 chunks and
    # rows of a width that is not a multiple of 8 are not grouped.
    bf = lambda *shape: torch.randn(*shape).bfloat16()  # noqa: E731
    xwb = lambda x, w, b: x * w + b  # noqa: E731
    ((_, src, grid, block, _),) = _cuda_sources(xwb, (bf(1024, 4096), bf(4096), bf(4096)))
    loadv = src[src.index("th_loadv8("):]
    loadv = loadv[:loadv.index("}")]
    assert "in0" in loadv and "in1 +" not in loadv and "in2 +" not in loadv
    assert "th_store8(r[u], r[0]," in src and block == 128 and grid == 1024 // 4 * 4096 // 8 // 128
    for args in ((bf(1023, 4096), bf(4096), bf(4096)), (bf(1024, 4100), bf(4100), bf(4100)),
                 (torch.randn(1024, 4096), torch.randn(4096), torch.randn(4096))):
        ((_, src, grid, block, _),) = _cuda_sources(xwb, args)
        assert "th_loadv" not in src and block == 256
    monkeypatch.setenv("THUNDER_CUDA_UNROLL_NUMEL", "many")
    with pytest.raises(Exception, match="THUNDER_CUDA_UNROLL_NUMEL must be a number of elements"):
        _cuda_sources(xwb, (bf(8, 64), bf(64), bf(64)))


@requires_compiler
def test_cuda_source_rounds_a_bf16_output_once():
    # softmax of bf16 rows converts its float result to bf16: the store does that rounding, with no
    # rounding and widening before it; the vector path rounds its chunk's values two at a time.
    ((_, src, *_),) = _cuda_sources(softmax, (torch.randn(16, 1000).bfloat16(),))
    body = _kernel_body(src)
    assert "th_st_bf16(" in body and "th_ld_bf16(th_st_bf16(" not in body
    vector = body[body.index("th_rows8("):]
    assert "th_pack_bf16(" in vector and "th_st_bf16(" not in vector.split("th_rows1(")[0]


@requires_compiler
def test_equal_operations_in_a_kernel_are_one_node():
    # cross-entropy's mean divides by the count of non-ignored targets, and the training forward
    # saves that count for the backward: one sum in the kernel (two were accumulated before).
    x, y = torch.randn(8, 33, requires_grad=True), torch.tensor([0, 1, 2, -100, 4, 5, 6, 32])
    jfn = _jit(F.cross_entropy)
    loss = jfn(x, y)
    loss.backward()
    x2 = x.detach().clone().requires_grad_(True)
    ref = F.cross_entropy(x2, y)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(x.grad, x2.grad)
    kernels = fusionex.fusion_kernels(jfn)
    assert any("= ne " in k.kernel_ir and "= sum " in k.kernel_ir for k in kernels)
    for k in kernels:
        ops = [line.split("=", 1)[1].strip() for line in k.kernel_ir.splitlines()
               if re.match(r"\s+n\d+ = ", line) and " load " not in line]
        assert len(ops) == len(set(ops)), k.kernel_ir


@requires_compiler
def test_cuda_source_uses_32_bit_indices_for_small_tensors():
    small = _cuda_sources(lambda a, b: a * b + 1, (torch.randn(8, 16), torch.randn(8, 16)))
    assert all("typedef int idx_t" in src for _, src, *_ in small)


nvrtc_loadable = pytest.mark.skipif(_core.fuser_nvrtc_version() == 0, reason="NVRTC not found")


@requires_compiler
@nvrtc_loadable
@pytest.mark.parametrize("fn,shape,kind", SCHEDULES, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_nvrtc_compiles_generated_sources(fn, shape, kind, dtype):
    for _, src, *_ in _cuda_sources(fn, _args(fn, shape, dtype)):
        ok, log, why = _core.fuser_nvrtc_compile(src, 90)
        assert ok, log


@requires_compiler
@nvrtc_loadable
def test_nvrtc_compiles_integer_bool_and_gather_kernels():
    a = torch.randint(-50, 50, (7, 9))
    fns = [(lambda t: torch.where(t > 0, t * 3 - 1, t & 7) + (t == 2).to(torch.int64), (a,)),
           (F.cross_entropy, (torch.randn(16, 1000), torch.randint(0, 1000, (16,)))),
           (lambda t: (t.amax(-1) + t.sum(-1)), (a,))]
    for fn, args in fns:
        for _, src, *_ in _cuda_sources(fn, args):
            ok, log, _ = _core.fuser_nvrtc_compile(src, 90)
            assert ok, log


# The generated kernels run by a CPU emulator of the CUDA features they use (tests/cuda_emulator.py):
# numerics of each schedule against eager, both the 16-byte vector path and the scalar path taken for
# misaligned pointers, and every barrier and shuffle reached by all the threads it waits for.
requires_emulator = pytest.mark.skipif(not (fusionex.available("cpu") and cuda_emulator.available()),
                                       reason="no C++20 compiler for the CUDA emulator")


def _emulate(fn, args, misalign=False, ref=None, smem_limit=48 * 1024, blocks=None):
    import inspect

    jfn = _jit(fn)
    jfn(*args)
    (kernel,) = fusionex.fusion_kernels(jfn)
    call = re.search(r"= fusion_cuda_all\d+\(([^)]*)\)", str(thunder.last_traces(jfn)[-1]))
    params = list(inspect.signature(fn).parameters)
    inputs = [args[params.index(n.strip())].contiguous() for n in call.group(1).split(",")]
    if misalign:  # the same values one element past an aligned address
        inputs = [torch.empty(t.numel() + 1, dtype=t.dtype)[1:].view(t.shape).copy_(t) for t in inputs]
    src, grid, block, smem = _core.fuser_cuda_source(kernel, smem_limit)
    assert smem <= smem_limit
    _emulate.last_source = src
    _emulate.jfn = jfn
    expected = fn(*args) if ref is None else ref
    several = isinstance(expected, tuple)
    outs = [torch.zeros_like(e).share_memory_() for e in (expected if several else (expected,))]
    for out in outs:
        if out.is_floating_point():
            out.fill_(123.0)  # every element must be written
    workspace = _core.fuser_cuda_workspace(kernel, smem_limit)
    scratch = [torch.zeros(workspace, dtype=torch.uint8).share_memory_()] if workspace else []
    # `blocks` caps the grid as the launch does to the blocks a device runs at once.
    grid = grid if blocks is None else min(grid, blocks)
    cuda_emulator.launch(src, grid, block, inputs + outs + scratch)
    finish = _core.fuser_cuda_finish(kernel, smem_limit)
    if finish:  # reductions over rows per column: the blocks' partials, combined by a second kernel
        name, fgrid, fblock = finish  # (told the row kernel's block count)
        cuda_emulator.launch(src, fgrid, fblock, inputs + outs + scratch + [_by_value(grid)], kernel=name)
    elif workspace:  # kernels on one stream share a workspace: its counters are left at zero
        counters = _core.fuser_cuda_workspace_counters(kernel, smem_limit)
        assert counters > 0 and not scratch[0][:counters].any()
    return (tuple(outs) if several else outs[0]), expected, kernel.kernel_ir.splitlines()[0]


H100_SMEM = 227 * 1024


def _by_value(v):
    """A kernel's unsigned parameter passed by value, as the emulator reads one: from a tensor's data."""
    return torch.tensor([v], dtype=torch.int32)


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["vector", "scalar"])
@pytest.mark.parametrize("width", [50304, 50301])
def test_emulated_rows_in_shared_memory_arrive_by_asynchronous_copies(width, misalign):
    # fp32 rows 50304 wide (201 KB) kept in shared memory: the vector path copies each row there
    # with cp.async, all of it issued before the first pass; the scalar path (misaligned or an odd
    # width) stores what it loads. Rows with -inf, +inf and NaN propagate as in eager.
    x = _inf_nan_rows(width)[:5]
    w, b = torch.randn(width), torch.randn(width)
    for fn, args in ((softmax, (x,)), (layer_norm, (x[4:] * 3 + 1, w, b))):
        got, ref, _ = _emulate(fn, args, misalign, smem_limit=H100_SMEM)
        assert ("th_cp_async16(" in _kernel_body(_emulate.last_source)) == (width % 4 == 0)
        torch.testing.assert_close(got, ref, equal_nan=True)


def _rope(q, cos, sin):
    half = q.shape[-1] // 2
    return q * cos + torch.cat((-q[..., half:], q[..., :half]), -1) * sin


def _heads_joined(q, k, v, cos):
    b, h, t, d = q.shape
    parts = [(q * cos).transpose(1, 2), (k * 2).transpose(1, 2), v.transpose(1, 2)]
    return torch.cat([p.reshape(b, t, h * d) for p in parts], -1)


def _pool3x3(x):
    p = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    m = p[..., 0:2 * h:2, 0:2 * w:2]
    for i in range(3):
        for j in range(3):
            m = torch.maximum(m, p[..., i:i + 2 * h:2, j:j + 2 * w:2])
    return m


PADDED_CASES = [
    # 16-byte chunks whose pad bounds fall on chunk edges: one bound check a chunk.
    ("rope bf16", _rope, lambda: (torch.randn(2, 3, 5, 64).bfloat16(), torch.randn(5, 64).bfloat16(),
                                  torch.randn(5, 64).bfloat16()), "th_ldv<unsigned short, 8>"),
    ("rope fp32", _rope, lambda: (torch.randn(2, 3, 5, 64), torch.randn(5, 64), torch.randn(5, 64)), "th_ldv<float, 4>"),
    # Bounds inside chunks: checked per lane.
    ("pad inside chunks", lambda x, y: F.pad(x[:, :5], (0, 3), value=0.5) + y,
     lambda: (torch.randn(4, 8), torch.randn(4, 8)), "(e + l)"),
    ("rope odd halves", _rope, lambda: (torch.randn(2, 5, 10), torch.randn(5, 10), torch.randn(5, 10)), None),
    ("pool windows", _pool3x3, lambda: (-torch.rand(2, 3, 8, 10) - 0.5,), None),
    ("pad of a broadcast row", lambda x, w: x * F.pad(w.expand(3, 5), (2, 1), value=2.0),
     lambda: (torch.randn(3, 8), torch.randn(5)), None),
    ("pad of a computed value", lambda x: F.pad(x.exp() - 1, (1, 3, 0, 1), value=-1.0) * 2,
     lambda: (torch.randn(4, 12),), None),
    ("slice of a computed value", lambda x: (x.exp() * 2)[:, 1:15:2] + 1, lambda: (torch.randn(4, 16),), None),
    # The same value along the innermost axis but its bounds: a value per lane all the same.
    ("pad of a broadcast column", lambda x: F.pad(x[:, :1].expand(4, 8), (4, 4), value=3.0) * 2,
     lambda: (torch.randn(4, 16),), None),
    # q, k and v's gradients joined by a cat of merged heads: a cat along a new dim of transposed
    # parts, two computed, written as [B, T, 3, H, D].
    ("cat of merged heads bf16", _heads_joined,
     lambda: tuple(torch.randn(2, 4, 6, 16).bfloat16() for _ in range(3)) + (torch.randn(6, 16).bfloat16(),),
     None),
    ("cat of merged heads fp32", _heads_joined,
     lambda: tuple(torch.randn(2, 3, 5, 12) for _ in range(3)) + (torch.randn(5, 12),), None),
]


# Slices of computed values in row and column kernels: the value computed from loads sliced alike
# (offsets off the vector width, strided columns).
SLICED_REDUCTIONS = [
    ("softmax of a sliced value", lambda x: x.exp()[:, 3:].softmax(-1), (6, 1027), "inner"),
    ("strided row sums", lambda x: (x * 2 + 1)[:, 1::2].sum(-1), (5, 301), "inner"),
    ("column sums of sliced rows", lambda x: (x.sigmoid() * x)[2:, 1:].sum(0), (67, 130), "outer"),
]


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["vector", "scalar"])
@pytest.mark.parametrize("name,fn,shape,kind", SLICED_REDUCTIONS, ids=[c[0] for c in SLICED_REDUCTIONS])
def test_emulated_slices_of_computed_values_in_reductions(name, fn, shape, kind, misalign):
    torch.manual_seed(0)
    got, ref, ir = _emulate(fn, (torch.randn(shape),), misalign=misalign, smem_limit=H100_SMEM)
    assert ir.startswith(kind)
    torch.testing.assert_close(got, ref)


def _swiglu_backward(h, g):
    a, b = h.chunk(2, -1)
    s = torch.sigmoid(a)
    silu = a * s
    return silu * b, torch.cat((g * b * s * (1 + a * (1 - s)), g * silu), -1)


CATS_IN_PARTS = [
    # SwiGLU's halves' gradients written into their join by the kernel computing them (beside the
    # product it also writes): 16-byte stores at the second half's offset; odd halves: scalars.
    ("swiglu bf16", _swiglu_backward, lambda: (torch.randn(3, 5, 64).bfloat16(), torch.randn(3, 5, 32).bfloat16()),
     "th_stv<unsigned short, 8>(out1 + ((idx_t)32)"),
    ("swiglu fp32", _swiglu_backward, lambda: (torch.randn(3, 5, 64), torch.randn(3, 5, 32)),
     "th_stv<float, 4>(out1 + ((idx_t)32)"),
    ("swiglu odd halves", _swiglu_backward, lambda: (torch.randn(4, 10), torch.randn(4, 5)), None),
    ("stacked", lambda x, y: torch.stack((x + y, x * y, x.exp()), 1), lambda: (torch.randn(6, 16), torch.randn(6, 16)),
     "th_stv<float, 4>(out0 + ((idx_t)32)"),
]


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["vector", "scalar"])
@pytest.mark.parametrize("name,fn,make,marker", PADDED_CASES + CATS_IN_PARTS,
                         ids=[c[0] for c in PADDED_CASES + CATS_IN_PARTS])
def test_emulated_padded_loads_and_cats_in_parts(name, fn, make, marker, misalign):
    # cat and constant pad as loads that read memory inside their bounds, the fill outside; a cat
    # no later operation reads stored in parts, each at its place in the cat's tensor through the
    # tensor's one pointer.
    torch.manual_seed(0)
    got, ref, ir = _emulate(fn, make(), misalign=misalign)
    assert ir.startswith("pointwise")
    torch.testing.assert_close(got, ref)
    if marker and not misalign:
        assert marker in _kernel_body(_emulate.last_source)
    if any(name == c[0] for c in CATS_IN_PARTS):
        (kernel,) = fusionex.fusion_kernels(_emulate.jfn)
        assert "(part at " in kernel.kernel_ir and " padded " not in kernel.kernel_ir


def _mul_add(a, b, c):
    return a * b + c


def _mul_sub(a, b, c):
    return c - a * b


def _sum_of_products(a, b, c):
    return (a * b).sum(-1) + c[:, 0]


def _sum_of_squares(a, b, c):
    return (a * a).sum(-1) - (b * c).sum(-1)


def _scaled_softmax(a, b, c):
    return torch.softmax(a * 0.1, -1) + b - c


@requires_emulator
@pytest.mark.parametrize("fn", [_mul_add, _mul_sub, _sum_of_products, _sum_of_squares, _scaled_softmax],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("misalign", [False, True], ids=["vector", "scalar"])
def test_emulated_sums_of_products_read_once_are_multiply_adds(fn, misalign):
    # A float sum of a product that nothing else reads accumulates by fused multiply-adds; an
    # element-wise a * b + c rounds twice as eager's two calls do, and a product read twice
    # (softmax(a * 0.1): its row maximum and its difference from it) is one rounded value at both
    # reads. Values against eager, with inf and NaN among the inputs.
    torch.manual_seed(0)
    a, b, c = (torch.randn(6, 1000) for _ in range(3))
    a[0, 3], b[1, 5], c[2, 7] = float("inf"), float("nan"), float("-inf")
    got, ref, _ = _emulate(fn, (a, b, c), misalign)
    torch.testing.assert_close(got, ref, equal_nan=True)
    body = _kernel_body(_emulate.last_source)
    assert ("__fmaf_rn(" in body) == (fn in (_sum_of_products, _sum_of_squares))
    if fn is _mul_add:  # bit for bit eager's
        torch.testing.assert_close(got, ref, rtol=0, atol=0, equal_nan=True)


@requires_emulator
def test_emulated_layer_norm_over_two_dims_copies_its_rows_asynchronously():
    # A row of two reduced dims (64 x 800 floats, 200 KB): the asynchronous copies address each
    # chunk through both dims.
    x, w, b = torch.randn(3, 64, 800) * 2 + 1, torch.randn(64, 800), torch.randn(64, 800)
    got, ref, ir = _emulate(lambda t, w, b: F.layer_norm(t, (64, 800), w, b), (x, w, b), smem_limit=H100_SMEM)
    assert ir == "inner axes [3, 64r, 800r]" and "th_cp_async16(((float*)(th_smem" in _emulate.last_source
    torch.testing.assert_close(got, ref)


def _inf_nan_rows(width):
    x = torch.randn(6, width)
    x[0, : width - 3] = -float("inf")  # only the last chunk is finite
    x[1] = -float("inf")
    x[2, width // 2] = float("inf")
    x[3, 7] = float("nan")
    x[4, :: 3] = -float("inf")
    return x


def _one_hot_grad(logp, target):
    # cross-entropy's gradient from log-probabilities, as the fused backward computes it (an iota
    # compared with the targets inside the row kernel).
    gl = torch.where(torch.arange(logp.shape[-1]) == target[:, None], -0.25, 0.0)
    return gl - logp.exp() * gl.sum(-1, keepdim=True)


def _one_hot_minus(t, v, x):
    oh = torch.where(torch.arange(x.shape[1]) == t[:, None], v[:, None], 0.0)
    return oh - x * oh.sum(1, keepdim=True)


EMULATED = {
    "pointwise_scalar": (gelu_chain, lambda: _args(gelu_chain, (33, 1027))),
    "pointwise_vector": (gelu_chain, lambda: _args(gelu_chain, (8, 4096))),
    "pointwise_1d_tail": (lambda a, b: torch.tanh(a * b) - a, lambda: (torch.randn(4099), torch.randn(4099))),
    "softmax_warp_per_row": (softmax, lambda: (torch.randn(19, 33),)),
    "softmax_block_cached": (softmax, lambda: (torch.randn(5, 4096),)),
    "softmax_block_reread": (softmax, lambda: (torch.randn(3, 50304),)),
    # Rows of 1024 threads kept in shared memory (a device that lets a block use 227 KiB).
    "softmax_block_smem": (softmax, lambda: (torch.randn(3, 50304),), H100_SMEM),
    "layer_norm_block_smem": (layer_norm, lambda: _args(layer_norm, (3, 50304)), H100_SMEM),
    "log_softmax_bf16_block_smem": (log_softmax, lambda: (torch.randn(3, 50304, dtype=torch.bfloat16),), H100_SMEM),
    # Per-row losses of 50304-wide rows: one online pass (no shared-memory row cache), the target's
    # logit read at its index.
    "cross_entropy_rows_online": (lambda x, t: torch.nn.functional.cross_entropy(x, t, reduction="none"),
                                  lambda: (torch.randn(3, 50304), torch.tensor([0, 50303, 7])), H100_SMEM),
    # The same from bf16 rows (16-byte chunks of 8 values), and rows of -inf, +inf and NaN.
    "cross_entropy_rows_online_bf16": (lambda x, t: torch.nn.functional.cross_entropy(x.float(), t, reduction="none"),
                                       lambda: (torch.randn(3, 50304).bfloat16(), torch.tensor([0, 50303, 7])),
                                       H100_SMEM),
    "cross_entropy_inf_nan_online_bf16": (lambda x, t: torch.nn.functional.cross_entropy(x.float(), t, reduction="none"),
                                          lambda: (_inf_nan_rows(50304).bfloat16(), torch.tensor([50303, 0, 9, 7, 1, 3])),
                                          H100_SMEM),
    "log_softmax_odd_width": (log_softmax, lambda: (torch.randn(3, 4100),)),
    "layer_norm": (layer_norm, lambda: _args(layer_norm, (6, 4096))),
    "rms_norm": (rms_norm, lambda: _args(rms_norm, (6, 4096))),
    "bias_grad_narrow": (bias_grad, lambda: (torch.randn(300, 37),)),
    "bias_grad_wide": (bias_grad, lambda: (torch.randn(64, 4096),)),
    # Few columns over many rows: the rows are split over blocks, whose partial sums the last block of
    # each column tile combines (row counts that leave the last split short; bf16; a maximum).
    "bias_grad_rows_split": (bias_grad, lambda: (torch.randn(2049, 40),)),
    "bias_grad_rows_split_bf16": (lambda g: g.sum(0) * 2, lambda: (torch.randn(4099, 24, dtype=torch.bfloat16),)),
    "amax_rows_split": (lambda x: x.amax(0) + 1, lambda: (torch.randn(3000, 20),)),
    # bf16 rows summed into float32 columns: 16-byte row accesses (8 elements), the column store
    # split in two.
    "bf16_rows_float_column_sum": (lambda g: g.float().sum(0) * 2, lambda: (torch.randn(600, 48, dtype=torch.bfloat16),)),
    "outer_row_broadcast_rows_split": (lambda g, x, m, r: (g * ((x - m) * r)).sum(0),
                                       lambda: (torch.randn(2500, 16), torch.randn(2500, 16),
                                                torch.randn(2500, 1), torch.rand(2500, 1) + 0.5)),
    # layer_norm's weight gradient as its backward recomputes it: per-row mean and rstd broadcast
    # along the kept axis of a column reduction.
    "outer_row_broadcast": (lambda g, x, m, r: (g * ((x - m) * r)).sum(0),
                            lambda: (torch.randn(300, 1024), torch.randn(300, 1024), torch.randn(300, 1),
                                     torch.rand(300, 1) + 0.5)),
    # A row's sum written over the whole row (the broadcast dim iterates on the reduced axis), and the
    # backward of mean inside a row kernel (hand-written rms_norm's input gradient).
    "row_sum_written_over_the_row": (lambda x: x.sum(1, keepdim=True).expand_as(x) * 2,
                                     lambda: (torch.randn(5, 1500),)),
    "mean_backward_in_a_row": (lambda g, x: g * x + (g * x).sum(1).div(1500)[:, None].expand_as(x) * x,
                               lambda: (torch.randn(5, 1500), torch.randn(5, 1500))),
    # A conversion to bf16 or fp16 inside an fp32 kernel rounds as eager's does (registers hold fp32).
    "bf16_fp16_round_trips": (lambda x: (x.to(torch.bfloat16).float() - x) * 64 + (x.half().float() - x) * 4096,
                              lambda: (torch.randn(8, 1027),)),
    # A row's sum of a one-hot (log_softmax's backward of nll_loss's gradient) is the target's value:
    # no pass over the row; with a full-size output the kernel is pointwise.
    "one_hot_row_sum": (lambda t, v: torch.where(torch.arange(300) == t[:, None], v[:, None], 0.0).sum(1) * 2,
                        lambda: (torch.randint(-2, 302, (16,)), torch.randn(16))),
    "one_hot_sum_pointwise": (lambda t, v, x: _one_hot_minus(t, v, x),
                              lambda: (torch.randint(-2, 302, (16,)), torch.randn(16), torch.rand(16, 300))),
    "int_amax": (lambda t: t.amax(-1) + 1, lambda: (torch.randint(-1000, 1000, (33, 517), dtype=torch.int32),)),
    "int_sum": (lambda t: t.sum(-1), lambda: (torch.randint(-1000, 1000, (33, 517), dtype=torch.int32),)),
    "iota_pointwise": (lambda x: (torch.arange(x.shape[-1]) * 3 - 7) * x, lambda: (torch.randn(8, 4096),)),
    "iota_one_hot_row_grad": (lambda lp, t: _one_hot_grad(lp, t), lambda: (torch.randn(5, 4100).log_softmax(-1),
                                                                          torch.randint(0, 4100, (5,)))),
    # Rows whose first chunks are all -inf, a row of -inf (NaN in eager), +inf and NaN rows; the
    # 50304-wide ones beyond a 48 KiB shared memory run the online softmax (the sum of exponentials
    # rescaled as the running maximum grows).
    "softmax_inf_nan_warp": (softmax, lambda: (_inf_nan_rows(40),)),
    "softmax_inf_nan_block": (softmax, lambda: (_inf_nan_rows(3000),)),
    "softmax_inf_nan_online": (softmax, lambda: (_inf_nan_rows(50304),)),
    "log_softmax_inf_nan_online": (log_softmax, lambda: (_inf_nan_rows(50304),)),
    "amax_nan_inf": (lambda t: t.amax(-1) * 2,
                     lambda: (torch.tensor([[1.0, float("nan"), 2.0], [float("inf"), 0.0, -1.0]]),)),
}


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("case", list(EMULATED))
def test_emulated_cuda_kernel_matches_eager(case, misalign):
    torch.manual_seed(0)
    fn, make, *limit = EMULATED[case]
    args = make()
    out, expected, _ = _emulate(fn, args, misalign=misalign, **({"smem_limit": limit[0]} if limit else {}))
    try:
        torch.testing.assert_close(out, expected, equal_nan=True)
    except AssertionError:
        # Sums in another order (rows split over blocks): as close to the float64 result as eager's.
        if not out.is_floating_point():
            raise
        truth = fn(*[a.double() if a.is_floating_point() else a for a in args])
        ours, eager = (out.double() - truth).abs().max().item(), (expected.double() - truth).abs().max().item()
        assert ours <= 2 * eager, f"error {ours:.3g} against float64, eager's {eager:.3g}"


GROUPED_ROWS = {
    # bf16 rows beside vectors the same in every row: each thread takes one chunk column in four rows
    # and loads the vectors once for them (37 rows: a last group of one; 2 rows: fewer than four; a
    # weight varying over the middle axis of three is loaded per row, the bias once).
    "gelu_chain": (gelu_chain, ((37, 64), (64,), (64,))),
    "few_rows": (lambda x, w, b: x * w + b, ((2, 64), (64,), (64,))),
    "three_dims": (lambda x, w, b: x * w + b, ((3, 5, 48), (5, 48), (48,))),
    # no vector the same in every row: four consecutive chunks a thread, and a scalar tail
    "no_vector": (lambda x, y: x * y + 1, ((37, 64), (37, 64))),
}


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("case", list(GROUPED_ROWS))
def test_emulated_bf16_pointwise_with_four_chunks_a_thread(case, misalign, monkeypatch):
    # 2-byte kernels of 4M elements and more take four chunks a thread; the threshold lowered to 0
    # runs that schedule on small tensors.
    monkeypatch.setenv("THUNDER_CUDA_UNROLL_NUMEL", "0")
    torch.manual_seed(0)
    fn, shapes = GROUPED_ROWS[case]
    args = tuple(torch.randn(*s).bfloat16() for s in shapes)
    out, expected, _ = _emulate(fn, args, misalign=misalign)
    assert ("th_loadv8(" in _emulate.last_source) == (case != "no_vector")
    assert "__launch_bounds__(128)" in _emulate.last_source
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@requires_emulator
def test_emulated_softmax_kernels_fold_the_sum_into_the_max_pass_only_for_rows_read_from_memory():
    # Rows that registers or shared memory hold make a max pass and a sum pass over them; rows that
    # neither holds (re-read from memory each pass) compute the maximum and the rescaled sum of
    # exponentials in one pass (one warp-shuffle round for both).
    for width, limit, rounds in ((40, H100_SMEM, 2), (3000, H100_SMEM, 2), (50304, H100_SMEM, 2), (50304, 48 * 1024, 1)):
        jfn = _jit(softmax)
        jfn(torch.randn(2, width))
        (kernel,) = fusionex.fusion_kernels(jfn)
        src = _core.fuser_cuda_source(kernel, limit)[0]
        body = src[src.rindex("TH_INLINE void th_rows"):]
        assert body.count("for (int m = 16; m > 0; m >>= 1)") == rounds, (width, limit)


@requires_emulator
def test_emulated_cross_entropy_forward_saving_row_statistics_is_one_pass():
    # The training forward writes each row's maximum and sum of exponentials (float32 already: the
    # saved maximum's conversion is a no-op) and reads wide rows once, in one online pass. The mean
    # over the rows (and the count of targets the backward reads) is the same kernel's.
    x = torch.randn(4, 50304, requires_grad=True)
    y = torch.tensor([0, 7, 50303, -100])
    jfn = _jit(F.cross_entropy)
    loss = jfn(x, y)
    (row_kernel,) = fusionex.fusion_kernels(jfn)
    assert "out0 = n1\n" in row_kernel.kernel_ir and "n1 = amax n0" in row_kernel.kernel_ir
    assert row_kernel.kernel_ir.count(" = sum_rows ") == 2
    src = _core.fuser_cuda_source(row_kernel, H100_SMEM)[0]
    body = src[src.rindex("TH_INLINE void th_rows"):src.index('extern "C"')]
    assert body.count("for (int m = 16; m > 0; m >>= 1)") == 1
    x2 = x.detach().clone().requires_grad_(True)
    ref = F.cross_entropy(x2, y)
    torch.testing.assert_close(loss, ref)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(x.grad, x2.grad)
    # The kernel itself, emulated: the statistics, the mean loss and the count against eager's, and
    # the workspace's block count left at 0 for the next kernel.
    src, grid, block, _ = _core.fuser_cuda_source(row_kernel, H100_SMEM)
    outs = [torch.full((4, 1), 123.0).share_memory_(), torch.full((4, 1), 123.0).share_memory_(),
            torch.full((), 123.0).share_memory_(), torch.full((), 123.0).share_memory_()]
    ws = torch.zeros(_core.fuser_cuda_workspace(row_kernel, H100_SMEM), dtype=torch.uint8).share_memory_()
    cuda_emulator.launch(src, grid, block, [x.detach(), y, *outs, ws])
    m = x.detach().amax(1, keepdim=True)
    torch.testing.assert_close(outs[0], m)
    torch.testing.assert_close(outs[1], (x.detach() - m).exp().sum(1, keepdim=True))
    torch.testing.assert_close(outs[2], F.cross_entropy(x.detach(), y))
    assert outs[3].item() == 3
    assert not ws[:_core.fuser_cuda_workspace_counters(row_kernel, H100_SMEM)].any()


@requires_emulator
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_emulated_erf_of_bf16_and_fp16_values_rounds_as_eager(dtype):
    # Arguments from -6 to 6, tiny ones down to 1e-30 (fp16: its smallest), +-inf and NaN: the
    # erf's results (bf16: th_erf_lp; fp16: erff; gelu's: th_erf_as, th_erf_as_lin) round to the exact
    # value (computed in float64), or (near a rounding boundary, under 1 % of them) one unit away.
    # Eager's CPU erf, an approximation within 1e-7, gives 0 for tiny arguments: the GPU test
    # compares with eager's CUDA erf.
    tiny = torch.logspace(-30 if dtype == torch.bfloat16 else -7, -1, 300)
    x = torch.cat([torch.linspace(-6, 6, 24001), tiny, -tiny, torch.tensor([float("inf"), -float("inf"), float("nan")])])
    x = x.to(dtype)
    if dtype == torch.float16:  # and every fp16 value from -6 to 6, subnormals included
        every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.float16)
        x = torch.cat([x, every[every.float().abs() <= 6]])
    xf = x.float()
    exact_erf = lambda t: torch.erf(t.double()).float()  # noqa: E731
    # Rounded, then doubled (as the kernel does: the doubling is exact, fp16's subnormals included).
    refs = {_erf2: exact_erf(xf),
            # eager's formula in float with an exactly rounded erf (below -2 its 1 + erf cancels: the
            # float formula itself, eager's too, is no closer than an absolute 1e-7 there)
            _gelu2: xf * 0.5 * (1 + exact_erf(xf * 0.7071067811865476))}
    for fn, ref in refs.items():
        got, _, _ = _emulate(fn, (x,))
        want = ref.to(dtype) * 2
        torch.testing.assert_close(got, want, equal_nan=True)
        units = (got.view(torch.int16).int() - want.view(torch.int16).int()).abs()
        checked = want.isfinite() & (xf >= -2)
        assert units[checked].max() <= 1 and (units[checked] > 0).float().mean() < 0.01, (fn, units[checked].max())


@requires_emulator
def test_emulated_bf16_rounding_inside_a_kernel_is_eager_bit_for_bit():
    # A bf16 rounding between operations: nearest even, ties both ways, subnormals, values rounding
    # up to inf, inf and NaN.
    bits = torch.arange(0, 2**16, dtype=torch.int32) << 16
    x = torch.cat([bits.view(torch.float32), (bits | 0x8000).view(torch.float32), (bits | 0x7FFF).view(torch.float32),
                   (bits | 0x8001).view(torch.float32), (bits | 0x1234).view(torch.float32)])
    got, want, _ = _emulate(lambda t: t.to(torch.bfloat16).float() * 3, (x,))
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)


def _half_pairs(x, y, s):
    # Packed operations of bf16/fp16 lane pairs: products, sums and differences of values of the
    # dtype, constants it holds exactly (0.5, 3), a value the same along the row (s, a pair of one
    # value twice) and a transposed one (y.mT, read lane by lane); a constant the dtype does not
    # hold (0.1) keeps the float product, rounded after.
    yt = y.mT
    a = x * yt
    d = (a + x - yt * 0.5) * 3.0 + s
    return d * 0.1 - x, (a * yt).float()


def _every_half_value(dtype):
    """Every 16-bit pattern of `dtype` (subnormals, +-inf, NaNs) as x, a fixed shuffle of them as y, and
    one value per row of 256 as s."""
    x = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype).reshape(256, 256)
    g = torch.Generator().manual_seed(0)
    y = x.flatten()[torch.randperm(x.numel(), generator=g)].reshape(x.shape)
    s = x.flatten()[torch.randperm(x.numel(), generator=g)[:256]].reshape(256, 1)
    return x, y, s


@requires_emulator
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_emulated_half_pairs_are_eager_bit_for_bit(dtype):
    # Chunks of bf16/fp16 values compute two lanes at a time: packed sums, differences and products
    # round once where eager computes in float and rounds, which is the same result for values of
    # the dtype (the emulator runs the helpers' portable form; the GPU test runs the packed
    # instructions).
    x, y, s = _every_half_value(dtype)
    (got, got_f), (want, want_f), _ = _emulate(_half_pairs, (x, y, s))
    body = _kernel_body(_emulate.last_source)
    name = "f16" if dtype == torch.float16 else "bf16"
    assert "l += 2" in body and "th_pair_dup(" in body and "th_st_pair(" in body
    # x * y, y * 0.5, * 3 and a * y; the two subtractions (the float32 output keeps 4 lanes a chunk)
    assert body.count(f"th_mul2_{name}(") == 4 and body.count(f"th_sub2_{name}(") == 2
    assert f"th_pack_{name}(" in body  # the product by 0.1, rounded for both lanes at once
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(got_f, want_f, equal_nan=True, rtol=0, atol=0)


# (dtype, constant, whether the dtype holds it exactly): normal, subnormal and largest values, and
# values between two of the dtype's (a packed product would round the constant first).
HALF_CONSTANTS = [
    (torch.float16, 2.0**-24, True), (torch.float16, 65504.0, True), (torch.float16, -1.5 * 2.0**-20, True),
    (torch.float16, 2.0**-25, False), (torch.float16, 1 + 2.0**-11, False), (torch.float16, 65520.0, False),
    (torch.bfloat16, 2.0**-133, True), (torch.bfloat16, -(2.0**127) * 1.5, True), (torch.bfloat16, 1 + 2.0**-8, False),
]


@requires_emulator
@pytest.mark.parametrize("dtype,c,exact", HALF_CONSTANTS, ids=lambda v: str(v))
def test_emulated_half_pairs_take_constants_the_dtype_holds(dtype, c, exact):
    # A product with a constant is packed only where the dtype holds the constant exactly; either
    # way the results are eager's bit for bit (x: every 16-bit pattern).
    x, _, _ = _every_half_value(dtype)
    got, want, _ = _emulate(lambda t: t * c - t, (x,))  # two operations: a lone one stays with torch
    assert ("th_mul2_" in _kernel_body(_emulate.last_source)) == exact
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)


def _random_half_program(seed, dtype):
    """A random chain of eager-exact operations on bf16/fp16 tensors a, b (rows) and c (a row
    vector): sums, differences, products (with constants the dtype holds or not), negations,
    maxima, selections, divisions and float32 detours. Returns fn(a, b, c) -> (last value, a middle
    value as float32)."""
    import random

    rng = random.Random(seed)
    steps = []
    for i in range(rng.randint(4, 9)):
        n = 3 + i  # values so far
        op = rng.choice(["add", "sub", "mul", "mulk", "neg", "max", "where", "div", "float"])
        steps.append((op, rng.randrange(n), rng.randrange(n), rng.choice([0.5, 3.0, -2.0, 0.1, 2.0**-10, 1e-3])))

    def fn(a, b, c):
        vals = [a, b, c]
        for op, i, j, k in steps:
            x, y = vals[i], vals[j]
            vals.append({"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y, "mulk": lambda: x * k,
                         "neg": lambda: -x, "max": lambda: torch.maximum(x, y),
                         "where": lambda: torch.where(x > y, x, y * k), "div": lambda: x / y,
                         "float": lambda: (x.float() * k + y.float()).to(dtype)}[op]())
        return vals[-1] + 0 * a, vals[len(vals) // 2 + 1].float() + 0 * a.float()  # noqa: B023

    return fn


@requires_emulator
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_emulated_random_half_programs_are_eager_bit_for_bit(dtype, seed):
    # Random chains over values of every magnitude (subnormals, overflow, inf, NaN), paired lanes
    # packed where they may be: eager's results bit for bit.
    g = torch.Generator().manual_seed(seed)
    scale = torch.exp2(torch.randint(-30, 20, (64, 96), generator=g).float())
    a, b = (torch.randn(64, 96, generator=g) * scale).to(dtype), (torch.randn(64, 96, generator=g) * 4).to(dtype)
    a[0, :4] = torch.tensor([float("inf"), -float("inf"), float("nan"), 0.0])
    c = torch.randn(96, generator=g).to(dtype)
    (got, got_f), (want, want_f), _ = _emulate(_random_half_program(seed, dtype), (a, b, c))
    assert "l += 2" in _kernel_body(_emulate.last_source)
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(got_f, want_f, equal_nan=True, rtol=0, atol=0)


@requires_emulator
@pytest.mark.parametrize("width", [768, 1000, 770])
def test_emulated_rows_of_a_warp_each_up_to_the_set_chunks(width, monkeypatch):
    # THUNDER_CUDA_WARP_ROW_CHUNKS=16: rows of up to 16 chunks a lane run a warp each (eight rows a
    # block, no block barrier): 6, 7.8 (lanes with fewer chunks) and 12.03 chunks a lane (770: chunks
    # of two elements).
    monkeypatch.setenv("THUNDER_CUDA_WARP_ROW_CHUNKS", "16")
    torch.manual_seed(0)
    x, g = torch.randn(19, width), torch.randn(19, width)
    w = torch.randn(width)
    for fn, args in ((layer_norm_input_grad, (x, g, w)), (softmax, (x,)), (layer_norm, (x, w, w.flip(0)))):
        out, expected, ir = _emulate(fn, args)
        assert ir.startswith("inner") and "__syncthreads" not in _kernel_body(_emulate.last_source)
        torch.testing.assert_close(out, expected)
    monkeypatch.setenv("THUNDER_CUDA_WARP_ROW_CHUNKS", "0")
    with pytest.raises(Exception, match="THUNDER_CUDA_WARP_ROW_CHUNKS must be a number of chunks >= 1"):
        _emulate(softmax, (x,))


@requires_emulator
@pytest.mark.parametrize("shape", [(50, 40), (300, 1000), (3, 5000)], ids=str)
def test_emulated_reductions_over_rows(shape):
    # A row reduction's values reduced over every row in the same kernel: rows of a warp (8 per
    # block, 50 rows: the last block short) and of a block. The last block to finish combines the
    # blocks' partials.
    torch.manual_seed(0)
    x = torch.randn(shape) * 3
    y = torch.randint(0, max(shape[1], 1), (shape[0],))
    if shape[0] > 2:
        y[1] = -100
    fns = [lambda t, y: F.cross_entropy(t, y), lambda t, y: F.cross_entropy(t, y, reduction="sum"),
           lambda t, y: torch.logsumexp(t, -1).mean()]
    if x.numel():
        fns.append(lambda t, y: t.softmax(-1).amax(-1).amin())
        # integer values over rows: an int64 count, an int32 maximum
        fns += [lambda t, y: (t.amax(-1) > 2.5).sum(), lambda t, y: (t.amax(-1) * 100).int().amax()]
    for fn in fns:
        got, want, ir = _emulate(fn, (x, y))
        assert ir.startswith("inner")
        torch.testing.assert_close(got, want, equal_nan=True)


@requires_emulator
@pytest.mark.parametrize("shape", [(1 << 16,), (4, 128, 130), (300, 257)], ids=str)
def test_emulated_full_reductions_split_over_blocks(shape):
    # A reduction of every element (x.sum(), a loss's mean) ran as one row, in one block; its domain
    # is split into rows of a few thousand columns (inside an axis where needed), one block's worth
    # each, and the last block to finish combines the rows' values in order.
    torch.manual_seed(0)
    x = torch.randn(shape)
    fns = [lambda t: t.sum(), lambda t: (t * t).mean(), lambda t: t.amax() - t.abs().amin(),
           lambda t: (t > 0).sum(), lambda t: (t * 2, (t * 2).sum())]  # an element-wise output too
    for fn in fns:
        ((_, _, grid, _, _),) = _cuda_sources(fn, (x,))
        assert grid >= 16
        got, want, ir = _emulate(fn, (x,))
        assert ir.startswith("inner") and not ir.split("[")[1].split("]")[0].split(", ")[0].endswith("r")  # rows first
        torch.testing.assert_close(got, want)
    got, want, _ = _emulate(lambda t: t.sum(), (x.t() if x.ndim == 2 else x,), blocks=3)  # fewer blocks
    torch.testing.assert_close(got, want)


@requires_emulator
@pytest.mark.parametrize("shape", [(4, 1, 256, 257), (3, 5, 100, 100), (2, 1, 1, 65536)], ids=str)
def test_emulated_few_long_rows_split_into_groups_of_blocks(shape):
    # A few long rows (per-sample losses) ran a block a row: each row is split into rows of a few
    # thousand columns, a fixed number of blocks a group of rows; the last block of a group to finish
    # combines the group's partials and stores its outputs (a count per group, left at zero).
    torch.manual_seed(0)
    a, b, w = torch.randn(shape), torch.randn(shape), torch.rand(shape[0], 1) + 0.5
    fns = [lambda a, b, w: ((a - b) ** 2).mean(dim=(1, 2, 3)),
           lambda a, b, w: (a * b).sum(dim=(1, 2, 3)).unsqueeze(1) * w + w.exp(),
           lambda a, b, w: a.amax(dim=(1, 2, 3)) - (a * b).amin(dim=(1, 2, 3)),
           lambda a, b, w: (a > 0).sum(dim=(1, 2, 3)),
           lambda a, b, w: (a * 2, (a * 2).sum(dim=(1, 2, 3)))]
    for fn in fns:
        ((_, _, grid, _, _),) = _cuda_sources(fn, (a, b, w))
        assert grid % shape[0] == 0 and grid > shape[0]
        got, want, ir = _emulate(fn, (a, b, w))
        assert "groups over 1" in ir, ir
        # Sums in another order than eager's: within a few roundings of the terms' magnitudes.
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * a[0].numel() ** 0.5)


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_emulated_group_norm_indexes_its_rows_as_one_run(dtype, misalign):
    # group_norm's kernel: rows of (channels / groups) x spatial elements, x read as one run per row
    # (no division per element) beside the weight and bias per channel (a division by the spatial
    # size); values against eager.
    torch.manual_seed(0)
    x = (torch.randn(2, 64, 9, 7) * 2 + 1).to(dtype)
    w, b = torch.randn(64).to(dtype), torch.randn(64).to(dtype)
    fn = lambda x, w, b: F.group_norm(x, 8, w, b)  # noqa: E731
    got, want, ir = _emulate(fn, (x, w, b), misalign=misalign)
    assert ir.startswith("inner axes [2, 8, 8r, 63r]"), ir
    # x's row is one run of 8 x 63 elements; the weight's index divides by the 63.
    assert "in0 + rb0 + ((c) * ((idx_t)1))" in _emulate.last_source
    assert re.search(r"rb\d+ \+ \(\(\(c\) / \(\(idx_t\)63\)\) \* \(\(idx_t\)1\)\)", _emulate.last_source)
    torch.testing.assert_close(got, want, **({} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 1e-2}))


@requires_emulator
def test_emulated_column_sum_beside_full_size_outputs_splits_rows_over_more_blocks():
    # gelu's backward beside its bias gradient: an element-wise output and a column sum in one
    # kernel, the rows split over more blocks than a column sum alone (512 here, not 256; a row
    # count that leaves the last split short).
    g, h = torch.randn(8193, 256), torch.randn(8193, 256)
    fn = lambda g, h: (g * torch.tanh(h), (g * torch.tanh(h)).sum(0))
    ((kernel, _, grid, _, _),) = _cuda_sources(fn, (g, h))
    assert kernel.kernel_ir.startswith("outer") and grid > 256
    outs, want, _ = _emulate(fn, (g, h))
    torch.testing.assert_close(outs[0], want[0])
    # The column sums add the 8193 rows in another order than eager: against float64, within four
    # roundings of the sum of the terms' magnitudes (a lost or doubled row would be off by ~0.5).
    terms = g.double() * torch.tanh(h.double())
    err = (outs[1].double() - terms.sum(0)).abs()
    assert (err <= 4 * 2.0**-24 * terms.abs().sum(0)).all(), err.max()


@requires_emulator
def test_emulated_column_float_sums_over_many_rows_are_as_accurate_as_eager():
    # A thread's float sum over hundreds of rows is folded into a double every few rows, and the
    # splits' partials are added in double (65536 rows of 0.1 lost 2.5e-6 on an H200, eager 5.2e-7).
    x = torch.full((32768, 64), 0.1)
    got, want, ir = _emulate(lambda t: t.sum(0), (x,))
    assert ir.startswith("outer")
    torch.testing.assert_close(got, want)
    exact = x.double().sum(0)
    err = float(((got.double() - exact) / exact).abs().max())
    assert err <= 2e-7, err


@requires_emulator
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int32], ids=str)
def test_emulated_split_column_partials_are_combined_by_every_thread_of_the_last_block(dtype):
    # 64 columns (a channels_last batch's channels) over 20001 rows: one tile of columns, its rows
    # split over many blocks; the last block's threads each combine a stride of the splits'
    # partials, then a tree over the block's rows. Sums (float ones in double), maxima and minima.
    torch.manual_seed(0)
    x = (torch.randn(20001, 64) * 100).to(dtype)
    if dtype.is_floating_point:
        x[5, 3], x[17, 9] = float("nan"), float("inf")
    fn = lambda t: (t.sum(0), t.amax(0), t.amin(0))  # noqa: E731
    got, want, ir = _emulate(fn, (x,))
    assert ir.startswith("outer") and "th_comb" in _emulate.last_source
    tol = {"atol": 0, "rtol": 0} if dtype == torch.int32 else ({"atol": 1e-2, "rtol": 1e-5} if dtype == torch.float32
                                                               else {"atol": 0.5, "rtol": 1e-2})
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, equal_nan=True, **tol)


@requires_emulator
def test_emulated_gather_out_of_range_gives_nan():
    # Eager raises a device-side assert there; the CUDA kernel makes that row NaN (the CPU kernels
    # raise IndexError).
    torch.manual_seed(0)
    x, idx = torch.randn(6, 300), torch.randint(0, 300, (6, 1))
    fn = lambda a, i: torch.log_softmax(a, -1).gather(1, i).sum(-1)  # noqa: E731
    ref = fn(x, idx)
    bad = idx.clone()
    bad[2, 0], bad[4, 0] = 300, -1
    ref[2] = ref[4] = float("nan")
    jfn = _jit(fn)
    jfn(x, idx)  # compiled with valid indices (the CPU kernel would raise on the bad ones)
    (kernel,) = fusionex.fusion_kernels(jfn)
    src, grid, block, _ = _core.fuser_cuda_source(kernel)
    out = torch.zeros_like(ref).share_memory_()
    cuda_emulator.launch(src, grid, block, [x, bad, out])
    torch.testing.assert_close(out, ref, equal_nan=True)


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
def test_emulated_bf16_softmax_and_layer_norm(misalign):
    # And two column sums in one kernel over bf16 columns (a weight's and a bias's gradient): blocks
    # of 8 column vectors whose rows combine in a tree.
    torch.manual_seed(0)
    x, w, b = (t.to(torch.bfloat16) for t in _args(layer_norm, (4, 4096)))
    g, h = torch.randn(96, 4096, dtype=torch.bfloat16), torch.randn(96, 4096, dtype=torch.bfloat16)
    col_sums = lambda g, h: (g * h).sum(0) + g.sum(0)  # noqa: E731
    for fn, args in ((softmax, (x,)), (layer_norm, (x, w, b))):
        # softmax and layer_norm compute in fp32 and round once, as eager's kernels do
        ref = fn(*(a.float() for a in args)).to(torch.bfloat16)
        out, _, ir = _emulate(fn, args, misalign=misalign, ref=ref)
        torch.testing.assert_close(out, ref)
    # g * h rounds to bf16 before its sum, as in eager; the sums, in another order, may differ in
    # their last bit before they round
    out, expected, _ = _emulate(col_sums, (g, h), misalign=misalign)
    torch.testing.assert_close(out, expected, atol=2e-2, rtol=1e-2)
    assert not torch.equal(out, col_sums(*(a.float() for a in (g, h))).to(torch.bfloat16))


@pytest.mark.skipif(fusionex.available("cuda"), reason="CUDA is available here")
def test_cuda_unavailable_gives_a_reason_and_one_debug_line(caplog, monkeypatch):
    ok, why = _core.fuser_available("cuda")
    assert not ok and why
    monkeypatch.setattr(fusionex, "_availability", {})
    with caplog.at_level(logging.DEBUG, logger="thunder.fusion"):
        assert not fusionex.available("cuda")
        assert not fusionex.available("cuda")
    lines = [r for r in caplog.records if r.name == "thunder.fusion"]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG and why in lines[0].getMessage()


@requires_compiler
@pytest.mark.skipif(fusionex.available("cuda"), reason="CUDA is available here")
def test_executor_stays_on_the_cpu_without_cuda():
    x, w, b = torch.randn(4, 8), torch.randn(8), torch.randn(8)
    jfn = _jit(gelu_chain)
    torch.testing.assert_close(jfn(x, w, b), gelu_chain(x, w, b))
    assert fusionex.fusion_kernels(jfn)


# ---- on a GPU --------------------------------------------------------------------------------------

SHAPES = [(4, 8), (33, 1027), (1, 1), (0, 5), (64, 4096), (3, 7, 129)]


@requires_cuda
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fn", [gelu_chain, softmax, log_softmax, layer_norm, rms_norm, bias_grad],
                         ids=lambda f: f.__name__)
def test_cuda_fused_matches_eager_fp32(fn, shape):
    torch.manual_seed(0)
    args = _args(fn, shape, device="cuda")
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(*args), fn(*args), equal_nan=True)
    if 0 not in shape and fn is not bias_grad or len(shape) == 2:
        assert fusionex.fusion_kernels(jfn) or 0 in shape


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(8, 3, 512, 512), (4, 1, 1, 1 << 20), (3, 5, 100, 100)], ids=str)
def test_cuda_few_long_rows_split_into_groups_of_blocks(shape, dtype):
    torch.manual_seed(0)
    a, b = torch.randn(shape, device="cuda", dtype=dtype), torch.randn(shape, device="cuda", dtype=dtype)
    w = torch.rand(shape[0], 1, device="cuda") + 0.5
    fns = [lambda a, b, w: ((a - b) ** 2).mean(dim=(1, 2, 3)),
           lambda a, b, w: (a.float() * b.float()).sum(dim=(1, 2, 3)).unsqueeze(1) * w + w.exp(),
           lambda a, b, w: a.amax(dim=(1, 2, 3)) - (a * b).amin(dim=(1, 2, 3)),
           lambda a, b, w: (a > 0).sum(dim=(1, 2, 3)),
           lambda a, b, w: (a * 2, (a * 2).sum(dim=(1, 2, 3)))]
    tol = {} if dtype == torch.float32 else {"rtol": 1.6e-2, "atol": 0.1}
    for fn in fns:
        jfn = _jit(fn)
        for _ in range(2):  # the counters left at zero for the next call
            torch.testing.assert_close(jfn(a, b, w), fn(a, b, w), **(tol or {"rtol": 1e-5, "atol": 1e-5 * a[0].numel() ** 0.5}))
        assert any("groups over 1" in k.kernel_ir for k in fusionex.fusion_kernels(jfn))


@requires_cuda
def test_cuda_interpolate_nearest_and_instance_norm():
    # Nearest upsampling's source indices (float arithmetic, as eager's CUDA kernels) and instance
    # norm through the fused kernels, forward and backward.
    torch.manual_seed(0)
    x = torch.randn(2, 64, 37, 45, device="cuda", requires_grad=True)
    w, b = torch.randn(64, device="cuda"), torch.randn(64, device="cuda")
    def upsample_norm(kw):
        return lambda x: F.silu(F.instance_norm(F.interpolate(x, **kw), weight=w, bias=b))

    def upsample(kw):
        return lambda x: F.interpolate(x, **kw)

    for kw in ({"scale_factor": 2}, {"scale_factor": 1.7}, {"size": (50, 101), "mode": "nearest-exact"}):
        fn = upsample_norm(kw)
        jfn = _jit(fn)
        got, want = jfn(x), fn(x)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        g = torch.randn_like(want)
        torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0],
                                   rtol=1e-4, atol=1e-4)
        exact = _jit(upsample(kw))
        torch.testing.assert_close(exact(x.detach()), F.interpolate(x.detach(), **kw), rtol=0, atol=0)


@requires_cuda
@pytest.mark.parametrize("param_dtype", [None, torch.float32], ids=["same", "fp32_params"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_cuda_norms_saving_statistics_through_the_torch_executor(dtype, param_dtype):
    # group_norm's and batch_norm's rules save statistics in the compute dtype; ATen's CUDA kernels
    # (the torch executor's, through torchex's wrappers) read them in theirs. Values and gradients
    # against eager, parameters in the input's dtype or float32; where eager raises (ATen's CUDA
    # group_norm takes no float32 parameters beside a bf16 input), thunder raises as eager does.
    torch.manual_seed(0)
    x = torch.randn(4, 32, 8, 8, device="cuda", dtype=dtype)
    pd = param_dtype or dtype
    w, b = torch.randn(32, device="cuda", dtype=pd), torch.randn(32, device="cuda", dtype=pd)
    for fn in (lambda x, w, b: F.group_norm(x, 8, w, b),
               lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)):
        ins = [tuple(t.detach().clone().requires_grad_() for t in (x, w, b)) for _ in range(2)]
        jfn = thunder.jit(fn, executors=["torch"])
        try:
            want = fn(*ins[1])
        except RuntimeError:
            with pytest.raises(RuntimeError):
                jfn(*ins[0])
            continue
        outs = [jfn(*ins[0]), want]
        tol = {} if dtype == torch.float32 else {"atol": 5e-2, "rtol": 2e-2}
        torch.testing.assert_close(outs[0], outs[1], **tol)
        cot = torch.randn_like(outs[1])
        for out in outs:
            out.backward(cot)
        for got, want in zip(*ins):
            assert got.grad.dtype == want.grad.dtype
            torch.testing.assert_close(got.grad, want.grad, **tol)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_cuda_group_norm_forward_and_backward(dtype):
    # group_norm in its one domain on the GPU: image batches of many and of few groups (a long row
    # each), values and gradients against eager.
    torch.manual_seed(0)
    for shape, groups in [((8, 64, 16, 16), 32), ((1, 320, 32, 32), 32), ((2, 6, 5), 3)]:
        x = torch.randn(shape, device="cuda", dtype=dtype)
        w, b = torch.randn(shape[1], device="cuda", dtype=dtype), torch.randn(shape[1], device="cuda", dtype=dtype)
        fn = lambda x, w, b, groups=groups: F.group_norm(x, groups, w, b)  # noqa: E731
        norm_values_and_grads_match(_jit(fn), fn, (x, w, b), dtype)


@requires_cuda
@pytest.mark.parametrize("n", [1, 7, 1001, 4096 + 3, 1 << 20])
def test_cuda_pointwise_sizes_and_scalar_tails(n):
    torch.manual_seed(0)
    x, y = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    fn = lambda a, b: torch.tanh(a * b + 1) - a  # noqa: E731
    torch.testing.assert_close(_jit(fn)(x, y), fn(x, y))


@requires_cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_cuda_kernels_on_the_second_device_leave_the_current_device_alone():
    fn = lambda a, b: torch.softmax(a * b + 1, -1) - a
    jfn = _jit(fn)
    x, y = torch.randn(64, 1000, device="cuda:1"), torch.randn(64, 1000, device="cuda:1")
    assert torch.cuda.current_device() == 0
    for _ in range(2):  # compiled and loaded, then launched from the in-memory cache
        out = jfn(x, y)
        assert out.device == torch.device("cuda:1") and torch.cuda.current_device() == 0
        torch.testing.assert_close(out, fn(x, y))
    assert fusionex.fusion_kernels(jfn)
    assert torch.empty(1, device="cuda").device == torch.device("cuda:0")


@requires_cuda
def test_cuda_broadcast_transposed_and_sliced_inputs():
    torch.manual_seed(0)
    x = torch.randn(1027, 33, device="cuda").t()  # non-contiguous
    w, b = torch.randn(1027, device="cuda"), torch.randn(1, device="cuda").expand(1027)  # stride 0
    torch.testing.assert_close(_jit(gelu_chain)(x, w, b), gelu_chain(x, w, b))
    big = torch.randn(64, 4100, device="cuda")
    xs = big[:, 1:4097]  # misaligned rows: the scalar path
    w4 = torch.randn(4096, device="cuda")
    torch.testing.assert_close(_jit(gelu_chain)(xs, w4, w4), gelu_chain(xs, w4, w4))
    torch.testing.assert_close(_jit(softmax)(xs), softmax(xs))
    torch.testing.assert_close(_jit(layer_norm)(xs, w4, w4), layer_norm(xs, w4, w4))
    xt = torch.randn(4096, 64, device="cuda").t()  # reduced axis not contiguous
    torch.testing.assert_close(_jit(softmax)(xt), softmax(xt))
    st = torch.randn(8, 64, 4096, device="cuda")[:, ::2]  # strided rows
    torch.testing.assert_close(_jit(rms_norm)(st, w4), rms_norm(st, w4))


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("fn", [gelu_chain, softmax, log_softmax, layer_norm, rms_norm],
                         ids=lambda f: f.__name__)
def test_cuda_low_and_high_precision(dtype, fn):
    # Fused kernels compute bf16/fp16 values in fp32 and round where eager rounds: after each torch
    # operation of a chain (the decompositions' conversions), once at the end of softmax or layer_norm.
    torch.manual_seed(0)
    args = _args(fn, (16, 4096 + 8), dtype, "cuda")
    torch.testing.assert_close(_jit(fn)(*args), fn(*args))


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cuda_half_pairs_are_eager_bit_for_bit(dtype):
    # The packed instructions (add.rn.f16x2, fma.rn.bf16x2, ...) over every value of the dtype
    # against eager's float operations and roundings: subnormals, ties, overflow to inf and NaN.
    x, y, s = (t.cuda() for t in _every_half_value(dtype))
    jfn = _jit(_half_pairs)
    (got, got_f), (want, want_f) = jfn(x, y, s), _half_pairs(x, y, s)
    (kernel,) = fusionex.fusion_kernels(jfn)
    assert "th_mul2_" in _core.fuser_cuda_source(kernel)[0]
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(got_f, want_f, equal_nan=True, rtol=0, atol=0)


@requires_cuda
def test_cuda_integer_and_bool_ops():
    a = torch.randint(-50, 50, (7, 9), device="cuda")
    fn = lambda t: torch.where(t > 0, t * 3 - 1, t & 7) + (t == 2).to(torch.int64)  # noqa: E731
    torch.testing.assert_close(_jit(fn)(a), fn(a))
    i32 = torch.randint(-1000, 1000, (33, 517), device="cuda", dtype=torch.int32)
    fn2 = lambda t: torch.where(t > 0, t, -t) * 3 - t.abs() + (t & 12)  # noqa: E731
    torch.testing.assert_close(_jit(fn2)(i32), fn2(i32))
    m = torch.rand(64, 129, device="cuda") > 0.5
    fn3 = lambda p, q: (p & ~q) | (p ^ q)  # noqa: E731
    torch.testing.assert_close(_jit(fn3)(m, m.flip(0)), fn3(m, m.flip(0)))
    fn4 = lambda t: t.sum(-1) + t.amax(-1)  # noqa: E731
    torch.testing.assert_close(_jit(fn4)(i32), fn4(i32))


@requires_cuda
def test_cuda_nan_and_inf_propagate_like_eager():
    x = torch.tensor([[1.0, float("nan"), 2.0], [float("inf"), 0.0, -1.0], [-float("inf"), 1.0, 2.0]], device="cuda")
    for fn in (softmax, lambda t: torch.maximum(t * 2, t + 1) - 1, lambda t: t.amax(-1) * 2 + t.amin(-1)):
        torch.testing.assert_close(_jit(fn)(x), fn(x), equal_nan=True)
    wide = torch.randn(8, 5000, device="cuda")
    wide[3, 4321] = float("nan")
    wide[5, 17] = float("inf")
    for fn in (softmax, lambda t: t.amax(-1) + 1, lambda t: t.amax(0) - 1):
        torch.testing.assert_close(_jit(fn)(wide), fn(wide), equal_nan=True)


@requires_cuda
@pytest.mark.parametrize("width", [50304, 32000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_cuda_rows_longer_than_a_block_holds(width, dtype):
    torch.manual_seed(0)
    x = torch.randn(64, width, device="cuda", dtype=dtype)
    y = torch.randint(0, width, (64,), device="cuda")
    for fn, args in ((softmax, (x,)), (log_softmax, (x,)), (F.cross_entropy, (x, y))):
        ref = fn(*(a.float() if a.is_floating_point() else a for a in args)).to(dtype)
        torch.testing.assert_close(_jit(fn)(*args), ref)


@requires_cuda
@pytest.mark.parametrize("width", [50304, 65536, 300000])
def test_cuda_wide_fp32_rows(width):
    # fp32 rows of 201 KB (one block's shared memory holds them) to 1.2 MB (read once per pass),
    # with -inf, +inf and NaN.
    torch.manual_seed(0)
    x = torch.randn(37, width, device="cuda") * 4
    x[1] = -float("inf")
    x[2, width // 3] = float("inf")
    x[3, width - 1] = float("nan")
    w, b = torch.randn(width, device="cuda"), torch.randn(width, device="cuda")
    for fn, args in ((softmax, (x,)), (log_softmax, (x,)), (layer_norm, (x[4:], w, b))):
        torch.testing.assert_close(_jit(fn)(*args), fn(*args), equal_nan=True)


@requires_cuda
@pytest.mark.parametrize("shape", [(4096, 4096), (300, 37), (8, 3, 1000)], ids=str)
def test_cuda_bias_gradients(shape):
    torch.manual_seed(0)
    g = torch.randn(shape, device="cuda")
    fns = [lambda t: t.sum(0), lambda t: (t * 2).sum(0) + 1, lambda t: t.amax(0)]
    for fn in fns:
        torch.testing.assert_close(_jit(fn)(g), fn(g), rtol=1e-4, atol=1e-3)
    gb = g.to(torch.bfloat16)
    torch.testing.assert_close(_jit(bias_grad)(gb), gb.float().sum(0).to(torch.bfloat16), rtol=2e-2, atol=5e-2)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cuda_erf_of_bf16_and_fp16_values_rounds_as_eager(dtype):
    # gelu and erf of bf16 values (the cheaper erf, with the hardware's approximate reciprocal and
    # exponential), erf of fp16 values (erff) and gelu of fp16 values (th_erf_as): eager's value, or
    # one unit away near a rounding boundary (under 1 % of them).
    tiny = torch.logspace(-30 if dtype == torch.bfloat16 else -7, -1, 300)
    x = torch.cat([torch.linspace(-6, 6, 240001), tiny, -tiny, torch.tensor([float("inf"), -float("inf"), float("nan")])])
    x = x.to(dtype).cuda()
    for fn in (_erf2, _gelu2, gelu_chain):
        args = (x, x.flip(0), x.roll(7)) if fn is gelu_chain else (x,)
        got, want = _jit(fn)(*args), fn(*args)
        torch.testing.assert_close(got, want, equal_nan=True)
        if fn is not gelu_chain:  # below -2, gelu's 1 + erf cancels in eager's float formula too
            units = (got.view(torch.int16).int() - want.view(torch.int16).int()).abs()
            checked = want.isfinite() & (x.float() >= -2)
            assert units[checked].max() <= 1 and (units[checked] > 0).float().mean() < 0.01, (fn, units.max())


@requires_cuda
def test_cuda_kernels_sharing_a_stream_workspace():
    # Kernels that combine partial results across blocks share one workspace per stream, whose
    # counters each leaves at zero: cross-entropy forwards (a mean over rows) of several sizes and
    # bias gradients (rows split over blocks, a count per column tile) alternate, on the default
    # stream and on a side stream, and each call matches eager.
    torch.manual_seed(0)
    ce, bias = _jit(F.cross_entropy), _jit(bias_grad)
    g = torch.randn(8192, 768, device="cuda", dtype=torch.bfloat16)
    side = torch.cuda.Stream()
    for rows, width in ((2048, 4096), (300, 1000), (64, 50304), (50, 40)):
        x = torch.randn(rows, width, device="cuda")
        y = torch.randint(0, width, (rows,), device="cuda")
        for stream in (torch.cuda.current_stream(), side, torch.cuda.current_stream()):
            with torch.cuda.stream(stream):
                for _ in range(3):
                    torch.testing.assert_close(ce(x, y), F.cross_entropy(x, y))
                    torch.testing.assert_close(bias(g), g.float().sum(0).to(torch.bfloat16), rtol=2e-2, atol=5e-2)
    torch.cuda.synchronize()
    assert any("sum_rows" in k.kernel_ir for k in fusionex.fusion_kernels(ce))


@requires_cuda
@pytest.mark.parametrize("shape", [(33, 1027), (64, 4096), (8, 50304)], ids=str)
def test_cuda_fused_backward_formulas(shape):
    torch.manual_seed(0)
    x, g, w = torch.randn(shape, device="cuda"), torch.randn(shape, device="cuda"), torch.randn(shape[-1], device="cuda")
    y = torch.softmax(x, -1)
    jfn = _jit(softmax_backward)
    torch.testing.assert_close(jfn(y, g), softmax_backward(y, g))
    assert fusionex.fusion_kernels(jfn)
    jln = _jit(layer_norm_input_grad)
    xr = x.clone().requires_grad_()
    F.layer_norm(xr, (shape[-1],), w, None).backward(g)
    torch.testing.assert_close(jln(x, g, w), xr.grad, rtol=1e-4, atol=1e-4)


@requires_cuda
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "layer_norm", "rms_norm", "cross_entropy"])
def test_cuda_forward_and_backward_through_autograd(name):
    torch.manual_seed(0)
    x = torch.randn(64, 1000, device="cuda", requires_grad=True)
    w = torch.randn(1000, device="cuda", requires_grad=True)
    b = torch.randn(1000, device="cuda", requires_grad=True)
    y = torch.randint(0, 1000, (64,), device="cuda")
    cot = torch.randn(64, 1000, device="cuda")
    fns = {
        "softmax": (lambda x, w, b: (softmax(x * w) * cot).sum(), (x, w, b)),
        "log_softmax": (lambda x, w, b: (log_softmax(x + b) * cot).sum(), (x, w, b)),
        "layer_norm": (lambda x, w, b: (layer_norm(x, w, b) * cot).sum(), (x, w, b)),
        "rms_norm": (lambda x, w, b: (rms_norm(x, w) * cot).sum(), (x, w, b)),
        "cross_entropy": (lambda x, w, b: F.cross_entropy(x * w + b, y), (x, w, b)),
    }
    fn, args = fns[name]
    loss = _jit(fn)(*args)
    loss.backward()
    grads = [a.grad.clone() for a in args if a.grad is not None]
    for a in args:
        a.grad = None
    ref = fn(*args)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-4)  # a sum of 64000 products
    for got, a in zip(grads, [a for a in args if a.grad is not None]):
        torch.testing.assert_close(got, a.grad, rtol=1e-4, atol=1e-4)


def _free_gpu_bytes():
    return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else 0


@requires_cuda
@pytest.mark.skipif(_free_gpu_bytes() < 24 * 2**30, reason="needs 24 GiB of free GPU memory")
def test_cuda_pointwise_past_2_31_elements():
    n = 2**31 + 4099
    x = torch.empty(n, device="cuda", dtype=torch.bfloat16)
    x.uniform_(-4, 4)
    fn = lambda a: a * 0.5 + 1  # noqa: E731
    jfn = _jit(fn)
    out = jfn(x)
    assert "typedef long long idx_t" in thunder.fusion_source(jfn, 0)
    for sl in (slice(0, 1 << 20), slice(n - (1 << 20), n), slice(2**31 - 100, 2**31 + 100)):
        torch.testing.assert_close(out[sl], fn(x[sl]))
    del out, x
    torch.cuda.empty_cache()


@requires_cuda
def test_cuda_compile_error_names_the_saved_source_and_the_log():
    with pytest.raises(Exception) as info:
        _core.fuser_cuda_load('extern "C" __global__ void thunder_kernel() { undefined_name(); }', 0)
    msg = str(info.value)
    assert "failed to compile" in msg and "undefined_name" in msg
    path = msg.split("(source: ")[1].split(",")[0]
    assert os.path.exists(path) and "undefined_name" in open(path).read()


@requires_cuda
def test_cuda_trace_and_source():
    x, w, b = (torch.randn(64, 256, device="cuda"), torch.randn(256, device="cuda"), torch.randn(256, device="cuda"))
    jfn = _jit(gelu_chain)
    jfn(x, w, b)
    assert "fusion_cuda_all0(" in str(thunder.last_traces(jfn)[-1])
    src = thunder.fusion_source(jfn, 0)
    assert "__global__" in src and "erff" in src


@requires_cuda
def test_cuda_disk_cache_is_reused_by_a_second_process(tmp_path):
    code = ("import torch, thunder\n"
            "import torch.nn.functional as F\n"
            "ex = [thunder.fusion_executor]\n"
            "x = torch.randn(64, 1000, device='cuda')\n"
            "j = thunder.jit(lambda t: torch.softmax(t * 3, -1), executors=ex)\n"
            "k = thunder.jit(lambda t, w: F.gelu(t * w) + t, executors=ex)\n"
            "r1, r2 = j(x), k(x, x[0])\n"
            "torch.testing.assert_close(r1, torch.softmax(x * 3, -1))\n"
            "torch.testing.assert_close(r2, F.gelu(x * x[0]) + x)\n"
            "from thunder.executors import fusionex\n"
            "print(fusionex.cache_stats())\n")
    env = dict(os.environ, THUNDER_CACHE_DIR=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + sys.path)
    run = lambda: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)  # noqa: E731
    first = run()
    assert first.returncode == 0, first.stderr
    assert "'compiles': 2" in first.stdout, first.stdout
    second = run()
    assert second.returncode == 0, second.stderr
    assert "'compiles': 0" in second.stdout and "'disk_hits': 2" in second.stdout, second.stdout
    assert len(glob.glob(str(tmp_path / "kernels" / "cuda-*"))) == 2


@requires_compiler
def test_cuda_outer_reduction_splits_tall_columns_over_blocks():
    # 768 bf16 columns are 12 column tiles: the rows are split so that the grid fills a GPU.
    jfn = _jit(bias_grad)
    jfn(torch.randn(8192, 768, dtype=torch.bfloat16))
    (kernel,) = fusionex.fusion_kernels(jfn)
    src, grid, block, _ = _core.fuser_cuda_source(kernel)
    assert grid >= 128 and "atomicAdd" in src and "th_ws" in src
    assert _core.fuser_cuda_workspace(kernel) > 0
    # Enough columns: one block per column tile over all rows, no workspace.
    jfn = _jit(bias_grad)
    jfn(torch.randn(64, 4096))
    (kernel,) = fusionex.fusion_kernels(jfn)
    assert _core.fuser_cuda_workspace(kernel) == 0 and "th_ws" not in _core.fuser_cuda_source(kernel)[0]


# ---- reductions over rows per column: layer_norm's weight and bias gradients in its row kernel ----

def layer_norm_grads(x, g, w):
    """layer_norm's three gradients (input, weight, bias) for cotangent g, as one region: the input
    gradient per row, the weight and bias gradients summed over every row."""
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    rstd = torch.rsqrt((xc * xc).mean(-1, keepdim=True) + 1e-5)
    xhat = xc * rstd
    gw = g * w
    gx = rstd * (gw - gw.mean(-1, keepdim=True) - xhat * (gw * xhat).mean(-1, keepdim=True))
    rows = tuple(range(x.dim() - 1))
    return gx, (g * xhat).sum(rows), g.sum(rows)


def rms_norm_grads(x, g, w):
    """rms_norm's input and weight gradients, the weight's in bf16/fp16 when x is (converted from
    the float sum), and a column maximum of |g| over the rows."""
    xf, gf = x.float(), g.float()
    rstd = torch.rsqrt((xf * xf).mean(-1, keepdim=True) + 1e-6)
    gw = gf * w.float()
    gx = rstd * (gw - xf * rstd * rstd * (gw * xf).mean(-1, keepdim=True))
    rows = tuple(range(x.dim() - 1))
    return gx.to(x.dtype), (gf * xf * rstd).sum(rows).to(x.dtype), gf.abs().amax(rows)


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["vector", "scalar"])
@pytest.mark.parametrize("shape", [(6, 40), (3, 5, 768), (70, 96), (9, 1000), (33, 130), (2, 2, 16), (3, 2056)],
                         ids=str)
def test_emulated_row_kernel_sums_columns_over_its_rows(shape, misalign):
    # One row kernel computes the input gradient and sums the weight and bias gradients per column
    # over its rows: each thread accumulates its columns, a block's row groups (warps, or groups of
    # 128..512 threads on named barriers) combine theirs, and a second kernel combines the blocks'
    # partials per column. Widths that are not multiples of the vector width, rows fewer than a
    # block's row groups, rows of one block and of several.
    torch.manual_seed(0)
    x, g, w = torch.randn(shape) * 2 + 1, torch.randn(shape), torch.randn(shape[-1])
    got, ref, ir = _emulate(layer_norm_grads, (x, g, w), misalign)
    assert ir.startswith("inner")
    body = _kernel_body(_emulate.last_source)
    assert "_finish(" in body and "cacc" in body
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@requires_emulator
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", [(5, 4096), (9, 768), (6, 1000)], ids=str)
def test_emulated_2_byte_column_sum_rows_go_through_32_bit_words(shape, dtype):
    # The norms' backward row kernels in 2-byte types load and store their vectors as 32-bit words
    # (th_ldw / th_stw: lanes shifted or masked out of each word); their forwards, and the 8192-wide
    # layer_norm backward with twice the accumulators, keep 16-bit lanes (th_ldv / th_stv).
    torch.manual_seed(0)
    x, g, w = (torch.randn(shape) * 2 + 1).to(dtype), torch.randn(shape).to(dtype), torch.randn(shape[-1]).to(dtype)
    got, _, _ = _emulate(layer_norm_grads, (x, g, w))
    body = _kernel_body(_emulate.last_source)
    assert "th_ldw<unsigned short, 8>(" in body and "th_stw<unsigned short, 8>(" in body
    assert "th_ldv<" not in body and "th_stv<" not in body
    ref = layer_norm_grads(*(a.double() for a in (x, g, w)))
    for a, b in zip(got, ref):  # within a few units of the dtype's last place of the largest
        scale = b.abs().max().item()
        torch.testing.assert_close(a.double(), b, rtol=2e-2, atol=2e-2 * scale)
    xs = torch.randn(4, 8192).to(dtype)
    fwd = _cuda_sources(lambda x, w: F.layer_norm(x, (8192,), w), (xs, xs[0]))
    doubled = _cuda_sources(layer_norm_grads, (xs, xs, xs[0]))
    for k, src, *_ in fwd + doubled:
        assert "th_ldw<" not in _kernel_body(src) and "th_ldv<unsigned short, 8>(" in _kernel_body(src)


@requires_emulator
@pytest.mark.parametrize("misalign", [False, True], ids=["vector", "scalar"])
@pytest.mark.parametrize("shape", [(5, 4096), (7, 2048), (3, 2, 2056)], ids=str)
def test_emulated_weights_of_column_sum_rows_are_loaded_once_before_the_rows(shape, misalign):
    # The bf16 layer_norm backward with 32 column accumulators a thread: its weight, the same in
    # every row, is loaded once per thread before the row loop (hw<id>) instead of in both passes of
    # every row; the scalar path (misaligned pointers) reads it as before. Rows of one block and of
    # several, a width that leaves the last chunks of some threads out.
    torch.manual_seed(0)
    x, g, w = (torch.randn(shape) * 2 + 1).bfloat16(), torch.randn(shape).bfloat16(), torch.randn(shape[-1]).bfloat16()
    got, _, _ = _emulate(layer_norm_grads, (x, g, w), misalign)
    body = _kernel_body(_emulate.last_source)
    rows8 = body[body.index("TH_INLINE void th_rows8"):]
    assert re.search(r"unsigned short hw\d+\[2\]\[8\];", rows8[:rows8.index("for (long long row")])
    assert "hw" not in body[body.index("TH_INLINE void th_rows1"):body.index("TH_INLINE void th_rows8")]
    ref = layer_norm_grads(*(a.double() for a in (x, g, w)))
    for a, b in zip(got, ref):
        scale = b.abs().max().item()
        torch.testing.assert_close(a.double(), b, rtol=2e-2, atol=2e-2 * scale)
    # 16 accumulators a thread (fp32 rows 768 wide, 128 threads a row): no hoisting.
    xs = torch.randn(4, 768)
    ((_, src, *_),) = _cuda_sources(layer_norm_grads, (xs, xs, xs[0]))
    assert " hw" not in _kernel_body(src)


@requires_emulator
def test_emulated_column_partials_of_more_blocks_than_one_load_batch():
    # 263 blocks of 16 warp rows: more partials per column than the second kernel's threads load in
    # one batch (16 rows of threads, 16 loads each), so its loop over the block count runs twice.
    torch.manual_seed(0)
    x, g, w = torch.randn(4200, 40) * 2 + 1, torch.randn(4200, 40), torch.randn(40)
    ((k, _, grid, _, _),) = _cuda_sources(layer_norm_grads, (x, g, w))
    assert grid == 263 and _core.fuser_cuda_finish(k)[2] == 512
    got, ref, _ = _emulate(layer_norm_grads, (x, g, w))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@requires_emulator
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_emulated_two_column_sums_keep_two_rows_a_block(dtype):
    # layer_norm's backward 8192 wide: its two column sums would leave one 512-thread row a block
    # within 32 accumulators a thread; with twice the accumulators, two rows of 256 threads share
    # the block (one row's reductions no longer stall the whole multiprocessor).
    torch.manual_seed(0)
    args = tuple(a.to(dtype) for a in (torch.randn(5, 8192) * 2 + 1, torch.randn(5, 8192), torch.randn(8192)))
    got, _, _ = _emulate(layer_norm_grads, args)
    body = _kernel_body(_emulate.last_source)
    assert "const int grp = (threadIdx.x / 256), tid = threadIdx.x % 256;" in body and "cacc" in body
    ref = layer_norm_grads(*(a.double() for a in args))
    for a, b in zip(got, ref):
        scale = b.abs().max().item()
        tol = 1e-4 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(a.double(), b.to(a.dtype).double(), rtol=tol, atol=tol * scale)


@requires_emulator
@pytest.mark.parametrize("shape", [(7, 4096), (5, 8192), (9, 2001)], ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_emulated_column_sums_in_shared_memory(dtype, shape, monkeypatch):
    # THUNDER_CUDA_COLUMN_SMEM=1: the column accumulators live in dynamic shared memory (each row
    # group its own slots), the block's groups combined in group order from there; a NaN in one
    # column stays in that column.
    monkeypatch.setenv("THUNDER_CUDA_COLUMN_SMEM", "1")
    torch.manual_seed(0)
    x, g, w = torch.randn(shape) * 2 + 1, torch.randn(shape), torch.randn(shape[1])
    g[3, 5] = float("nan")
    args = tuple(a.to(dtype) for a in (x, g, w))
    for fn in (layer_norm_grads, rms_norm_grads):
        got, _, _ = _emulate(fn, args, smem_limit=H100_SMEM)
        body = _kernel_body(_emulate.last_source)
        assert "th_smem" in body and "* const cacc" in body
        ref = fn(*(a.double() for a in args))
        for a, b in zip(got, ref):
            scale = b.nan_to_num().abs().max().item()
            tol = 1e-4 if dtype == torch.float32 else 2e-2
            torch.testing.assert_close(a.double(), b.to(a.dtype).double(), rtol=tol, atol=tol * scale, equal_nan=True)
        assert got[1][5].isnan() and got[1].isnan().sum() == 1


@requires_emulator
@pytest.mark.parametrize(("dtype", "width"), [(torch.bfloat16, 4096), (torch.float32, 1024),
                                              (torch.bfloat16, 768), (torch.float32, 200)], ids=str)
def test_emulated_column_sums_over_a_grid_of_fewer_blocks_than_rows(dtype, width):
    # Three blocks loop over 37 rows (the launch runs only the blocks a device holds at once), each
    # accumulating its rows' columns before the partials are combined. A NaN and an inf stay in
    # their rows and columns.
    torch.manual_seed(0)
    x, g, w = torch.randn(37, width) * 2 + 1, torch.randn(37, width), torch.randn(width)
    g[36, 5] = float("nan")
    x[17, 9] = float("inf")
    args = tuple(a.to(dtype) for a in (x, g, w))
    for fn in (layer_norm_grads, rms_norm_grads):
        got, _, _ = _emulate(fn, args, smem_limit=H100_SMEM, blocks=3)
        ref = fn(*(a.double() for a in args))
        for a, b in zip(got, ref):
            scale = b.nan_to_num(posinf=0, neginf=0).abs().max().item()
            tol = 1e-4 if dtype == torch.float32 else 2e-2
            torch.testing.assert_close(a.double(), b.to(a.dtype).double(), rtol=tol, atol=tol * scale, equal_nan=True)


@requires_emulator
@pytest.mark.parametrize("width", [200, 768])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_emulated_column_sums_over_rows_in_low_precision_and_nan(dtype, width):
    # bf16/fp16 rows: the column sums accumulate in float and round once (the weight gradient's
    # output dtype); a column maximum beside them; a NaN and an inf in one column propagate to
    # that column alone. 768 bf16/fp16 columns: a warp a row.
    torch.manual_seed(0)
    x, g, w = torch.randn(40, width), torch.randn(40, width), torch.randn(width)
    g[3, 7] = float("nan")
    g[5, 11] = float("inf")
    args = (x.to(dtype), g.to(dtype), w.to(dtype))
    ref = rms_norm_grads(*(a.double() for a in args))
    got, _, ir = _emulate(rms_norm_grads, args)
    assert ir.startswith("inner")
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype != torch.float32 else {"rtol": 1e-4, "atol": 1e-4}
    for a, b in zip(got, ref):
        torch.testing.assert_close(a.double(), b.to(a.dtype).double(), equal_nan=True, **tol)
    assert got[1][7].isnan() and got[2][11].isinf() and got[1].isnan().sum() == 1
    if width == 768 and dtype != torch.float32:  # 16-byte chunks of 8: a warp a row, 3 chunks a lane
        args = (x.to(dtype), torch.randn(40, width).to(dtype), w.to(dtype))
        got, _, _ = _emulate(layer_norm_grads, args)
        assert "th_bar_sync" not in _kernel_body(_emulate.last_source) and "cacc" in _emulate.last_source
        ref = layer_norm_grads(*(a.double() for a in args))
        for a, b in zip(got, ref):  # within a few units of the dtype's last place of the largest
            scale = b.abs().max().item()
            torch.testing.assert_close(a.double(), b, rtol=2e-2, atol=2e-2 * scale)


@requires_compiler
def test_cuda_source_of_column_sums_over_rows():
    # The grid is capped at the blocks the device runs at once (the partials then stay few), and
    # the kernel that combines them is part of the source, named after the row kernel.
    torch.manual_seed(0)
    x, g, w = torch.randn(8192, 768), torch.randn(8192, 768), torch.randn(768)
    ((k, src, grid, block, _),) = _cuda_sources(layer_norm_grads, (x, g, w))
    name, fgrid, fblock = _core.fuser_cuda_finish(k)
    assert grid <= 512 and block == 512 and fgrid == 768 // 32 and fblock == 512
    assert f" {name}(" in src and "th_bar_sync(1 + grp, 128)" in src
    # The second kernel is told the row kernel's block count (its launch's grid) by an argument.
    assert f" {name}(" in src and "const unsigned th_nb)" in src[src.index(f" {name}("):]
    assert _core.fuser_cuda_workspace_counters(k) == 0  # no counters: the second kernel combines
    # Rows wider than 16384 leave the column sums to a column kernel.
    x, g, w = torch.randn(4, 16400), torch.randn(4, 16400), torch.randn(16400)
    kinds = sorted(k.kernel_ir.split()[0] for k, *_ in _cuda_sources(layer_norm_grads, (x, g, w)))
    assert kinds == ["inner", "outer"]


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(8, 1024, 768), (3, 77, 4096), (5000, 130), (1, 1, 64)], ids=str)
def test_cuda_layer_norm_and_rms_norm_backward_is_one_row_kernel(shape, dtype):
    # A training step's backward: one row kernel (and its partials' second kernel) for all the
    # gradients, against eager's autograd; bf16 against the step in float64 (eager's bf16 weight
    # gradient is itself a rounded float sum).
    torch.manual_seed(0)
    D = shape[-1]
    for mod in (torch.nn.LayerNorm(D), torch.nn.RMSNorm(D)):
        mod = mod.to("cuda", dtype)
        with torch.no_grad():
            mod.weight.normal_()
        x = torch.randn(shape, device="cuda", dtype=dtype, requires_grad=True)
        g = torch.randn(shape, device="cuda", dtype=dtype)
        jm = _jit(mod)
        jm(x).backward(g)
        got = [x.grad] + [p.grad for p in mod.parameters()]
        ref = torch.nn.LayerNorm(D) if isinstance(mod, torch.nn.LayerNorm) else torch.nn.RMSNorm(D)
        ref = ref.to("cuda", torch.float64)
        ref.load_state_dict({k: v.double() for k, v in mod.state_dict().items()})
        x64 = x.detach().double().requires_grad_()
        ref(x64).backward(g.double())
        want = [x64.grad] + [p.grad for p in ref.parameters()]
        tol = {"rtol": 1e-4, "atol": 1e-3} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 5e-2}
        for a, b in zip(got, want):
            scale = max(1.0, b.abs().max().item())
            torch.testing.assert_close(a.double() / scale, b / scale, **tol)
        kernels = thunder.last_backward_traces(jm)[-1].fusion_callables
        if x.numel() >= 4096:
            assert [k.kernel_ir.split()[0] for k in kernels] == ["inner"], [k.kernel_ir for k in kernels]
