"""Dropout with random numbers drawn inside fused kernels (`thunder.jit(fn, fuse_random=True)`).

The mask is `uniform_philox(state) < 1 - p`: Philox4x32-10 over the element index under a
[seed, offset] state taken from torch's generator. The forward saves only the state; the backward
draws the same mask again. Checked against the Python reference of the same numbers
(torchex.philox_uniform_values), against torch.autograd for the gradient, on the CPU, on CUDA where
it exists, and through the CUDA emulator without a GPU.
"""

from __future__ import annotations

import math
import re

import cuda_emulator
import pytest
import torch
import torch.nn.functional as F
from random_programs import philox_dropout

import thunder
from thunder import _core
from thunder.executors import fusionex, torchex

CUDA = torch.cuda.is_available() and fusionex.available("cuda")
requires_compiler = pytest.mark.skipif(not fusionex.available("cpu"), reason="no C++ compiler")
DEVICES = [pytest.param("cpu", marks=requires_compiler),
           pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs CUDA, its driver and NVRTC"))]

# Every size fused (small CPU regions are otherwise left to torch, which runs the reference).
FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fusion_dropout_all", min_cpu_numel=0))


def _expected_state(device):
    """The [seed, offset] the next draw takes from `device`'s generator (read without drawing)."""
    if device == "cuda":
        gen = torch.cuda.default_generators[torch.cuda.current_device()]
        seed = gen.initial_seed() & (2**64 - 1)
        return seed - 2**64 if seed >= 2**63 else seed, gen.get_offset()
    state = torch.get_rng_state()
    seed = torch.empty((), dtype=torch.int64).random_().item()
    torch.set_rng_state(state)
    return seed, 0


def _reference_keep(shape, seed, offset, p, device):
    return torchex.philox_uniform_values(shape, seed, offset, device) < 1 - p


def test_philox_known_answer():
    # Philox4x32-10 of counter 0 under key 0 (Salmon et al. 2011, Random123's known-answer vectors):
    # 0x6627e8d5 0xe169c58d 0xbc57ac4c 0x9b00dbd8; the numbers keep each word's top 24 bits.
    u = torchex.philox_uniform_values((4,), 0, 0, "cpu")
    assert [int(v * 2**24) for v in u] == [0x6627E8, 0xE169C5, 0xBC57AC, 0x9B00DB]
    # Elements 4..7 are the block at the next counter: a different block, not a shifted copy.
    assert not torch.equal(torchex.philox_uniform_values((8,), 0, 0, "cpu")[4:], u)


SHAPES = [(1024, 4096), (5, 7, 1001), (3, 1030), (2053, 3), (1,), (0, 5)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_fused_dropout_draws_the_reference_mask_and_its_gradient(device, shape, dtype):
    p = 0.3
    torch.manual_seed(0)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    g = torch.randn(shape, device=device, dtype=dtype)
    jfn = thunder.jit(lambda a: F.dropout(a, p, training=True), executors=[FUSE_ALL], fuse_random=True)
    seed, offset = _expected_state(device)
    out = jfn(x)
    keep = _reference_keep(shape, seed, offset, p, device)
    # Eager's arithmetic on the reference mask, with torch.autograd for the gradient.
    ref = torch.where(keep, x * (1 / (1 - p)), 0.0)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    out.backward(g)
    (ref_grad,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(x.grad, ref_grad, rtol=0, atol=0)


@requires_compiler
def test_fused_dropout_saves_its_state_not_a_mask_and_redraws_in_the_backward():
    x = torch.randn(256, 1024, requires_grad=True)
    y = torch.randn(256, 1024)
    jfn = thunder.jit(lambda a, b: b + F.dropout(torch.tanh(a), 0.1, training=True), fuse_random=True)
    jfn(x, y).sum().backward()
    fwd, bwd = str(thunder.last_traces(jfn)[-1]), str(thunder.last_backward_traces(jfn)[-1])
    # One kernel each way draws the numbers; the forward returns the [2] state beside tanh's output.
    assert re.search(r"t\d+ = fusion\d+\(", fwd) and "# t" in fwd
    assert fwd.count("prims.uniform_philox") == 1 and bwd.count("prims.uniform_philox") == 1
    assert 'philox_state(device=torch.device(\'cpu\'))  # t' in fwd
    assert "native_dropout" not in fwd and "b8[256, 1024]" not in fwd.split("return")[-1]
    saved = re.search(r"return \(t\d+, \((.*)\)\)", fwd).group(1)
    assert len([s for s in saved.split(",") if s.strip()]) == 2  # tanh's output and the state


@requires_compiler
def test_fused_dropout_is_reproducible_under_manual_seed_and_differs_between_calls():
    x = torch.randn(64, 1024, requires_grad=True)
    jfn = thunder.jit(lambda a: F.dropout(a, 0.5, training=True), fuse_random=True)
    torch.manual_seed(3)
    first, second = jfn(x), jfn(x)
    torch.manual_seed(3)
    again = jfn(x)
    assert torch.equal(first, again)
    assert not torch.equal(first != 0, second != 0)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_dropout_keeps_the_expected_share(device):
    # 4M draws: the kept share is within 6 standard deviations of 1 - p, for several p.
    n = 1 << 22
    x = torch.ones(n, device=device, requires_grad=True)
    for p in (0.1, 0.5, 0.9):
        jfn = thunder.jit(lambda a, p=p: F.dropout(a, p, training=True), fuse_random=True)
        kept = (jfn(x) != 0).double().mean().item()
        assert abs(kept - (1 - p)) < 6 * math.sqrt(p * (1 - p) / n), (p, kept)


@requires_compiler
def test_two_dropouts_in_one_program_draw_different_masks():
    x = torch.ones(128, 1024, requires_grad=True)
    jfn = thunder.jit(lambda a: (F.dropout(a, 0.5, training=True), F.dropout(a, 0.5, training=True)),
                      fuse_random=True)
    a, b = jfn(x)
    agree = ((a != 0) == (b != 0)).double().mean().item()
    assert abs(agree - 0.5) < 0.01


def test_without_a_fusion_executor_dropout_draws_as_eager():
    # fuse_random needs a fusion executor on the program's device; without one, torch's dropout
    # draws exactly as eager does.
    x = torch.randn(64, 256, requires_grad=True)
    fn = lambda a: F.dropout(a, 0.25, training=True)
    jfn = thunder.jit(fn, executors=[thunder.pytorch_executor], fuse_random=True)
    torch.manual_seed(5)
    out = jfn(x)
    torch.manual_seed(5)
    torch.testing.assert_close(out, fn(x), rtol=0, atol=0)
    assert "uniform_philox" not in str(thunder.last_traces(jfn)[-1])


@requires_compiler
@pytest.mark.parametrize("width", [1001, 1024])
def test_fused_dropout_of_a_broadcast_sum(width):
    # Two loop axes (the bias is broadcast): each row's numbers start at row * width, divisible by
    # four or not.
    p = 0.2
    x = torch.randn(6, width, requires_grad=True)
    b = torch.randn(width)
    jfn = thunder.jit(lambda a, c: F.dropout(a + c, p, training=True), executors=[FUSE_ALL], fuse_random=True)
    seed, offset = _expected_state("cpu")
    out = jfn(x, b)
    keep = _reference_keep((6, width), seed, offset, p, "cpu")
    torch.testing.assert_close(out, torch.where(keep, (x + b) * (1 / (1 - p)), 0.0), rtol=0, atol=0)


# ---- the CUDA kernels, run by the emulator ---------------------------------------------------------

requires_emulator = pytest.mark.skipif(not (fusionex.available("cpu") and cuda_emulator.available()),
                                       reason="needs a C++20 compiler for the CUDA emulator")


@requires_emulator
@pytest.mark.parametrize("width,misalign", [(1024, False), (1024, True), (1001, False), (7, False)])
def test_emulated_cuda_dropout_kernel_draws_the_reference_mask(width, misalign):
    p = 0.3
    torch.manual_seed(0)
    x = torch.randn(6, width, requires_grad=True)
    b = torch.randn(width)
    jfn = thunder.jit(lambda a, c: F.dropout(a + c, p, training=True), executors=[FUSE_ALL], fuse_random=True)
    jfn(x, b)
    (kernel,) = fusionex.fusion_kernels(jfn)
    src, grid, block, _ = _core.fuser_cuda_source(kernel, 48 * 1024)
    assert "th_rng_state" in src
    if width % 4 == 0:
        assert "float rq" in src  # vector lanes share Philox blocks
    trace = str(thunder.last_traces(jfn)[-1])
    names = [n.strip() for n in re.search(r"= fusion_dropout_all\d+\(([^)]*)\)", trace).group(1).split(",")]
    seed, offset = -1234567890123, 8
    values = {"a": x.detach(), "c": b}
    inputs = []
    for n in names:
        t = values.get(n, torch.tensor([seed, offset], dtype=torch.int64))
        if misalign and t.dtype != torch.int64:  # the same values one element past an aligned address
            t = torch.empty(t.numel() + 1, dtype=t.dtype)[1:].view(t.shape).copy_(t)
        inputs.append(t)
    out = torch.full((6, width), 123.0).share_memory_()
    cuda_emulator.launch(src, grid, block, inputs + [out])
    keep = _reference_keep((6, width), seed, offset, p, "cpu")
    torch.testing.assert_close(out, torch.where(keep, (x + b).detach() * (1 / (1 - p)), 0.0), rtol=0, atol=0)


@requires_compiler
def test_small_cpu_dropout_is_still_fused():
    # CPU regions under 4096 elements are otherwise left to torch, which would compute the numbers
    # with the reference (~40 tensor operations).
    x = torch.randn(16, 16, requires_grad=True)
    jfn = thunder.jit(lambda a: F.dropout(a, 0.5, training=True), fuse_random=True)
    seed, offset = _expected_state("cpu")
    out = jfn(x)
    keep = _reference_keep((16, 16), seed, offset, 0.5, "cpu")
    torch.testing.assert_close(out, torch.where(keep, x * 2.0, 0.0), rtol=0, atol=0)
    fwd = str(thunder.last_traces(jfn)[-1])
    assert re.search(r"= fusion\d+\(", fwd) and "torchex.uniform_philox" not in fwd


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["mlp", "gpt_loss_manual"])
def test_model_training_with_fused_dropout_matches_eager_drawing_the_same_masks(name, device, monkeypatch):
    # Every dropout of the model (after the attention softmax, on the residual branches, after the
    # embeddings) draws in the fused kernels; eager with F.dropout drawing the same numbers in the
    # same order gives the same loss and gradients.
    import copy

    from test_models import _loss_of, make

    model, inputs = make(name, dropout=0.2)
    model, inputs = model.to(device), tuple(t.to(device) for t in inputs)
    eager = copy.deepcopy(model)
    jm = thunder.jit(model, fuse_random=True)
    torch.manual_seed(11)  # seeds the CUDA generators too
    loss = _loss_of(jm(*inputs))
    loss.backward()
    torch.manual_seed(11)
    with monkeypatch.context() as m:
        m.setattr(F, "dropout", philox_dropout)
        ref = _loss_of(eager(*inputs))
    ref.backward()
    torch.testing.assert_close(loss, ref)
    for (n, p), (_, q) in zip(model.named_parameters(), eager.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda s, n=n: f"{n}: {s}")
    fwd = str(thunder.last_traces(jm)[-1])
    assert fwd.count("prims.uniform_philox") >= 2 and "native_dropout" not in fwd


@requires_compiler
def test_checkpointed_dropout_redraws_the_forward_mask():
    # A checkpointed region runs again in the backward: its dropout must use the saved state, not a
    # new draw.
    import torch.utils.checkpoint as ckpt
    from random_programs import philox_dropout_reference

    def block(x, w):
        return F.dropout(torch.tanh(x @ w), 0.3, training=True) * 2

    def f(x, w):
        return ckpt.checkpoint(block, x, w, use_reentrant=False).sum()

    x, w = torch.randn(64, 64, requires_grad=True), torch.randn(64, 64, requires_grad=True)
    jf = thunder.jit(f, fuse_random=True)
    torch.manual_seed(1)
    loss = jf(x, w)
    loss.backward()
    gx, gw = x.grad, w.grad
    x.grad = w.grad = None
    torch.manual_seed(1)
    with philox_dropout_reference():
        ref = f(x, w)
        ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)
    bwd = str(thunder.last_backward_traces(jf)[-1])
    assert "philox_state" not in bwd and "uniform_philox" in bwd


@pytest.mark.parametrize("device", DEVICES)
def test_fused_dropout_without_grad(device):
    # Dropout in training mode in a program run without grad (or on a value that needs none, beside
    # one that does) draws in the kernel too.
    p = 0.4
    x = torch.randn(128, 512, device=device)
    w = torch.randn(128, 512, device=device, requires_grad=True)

    def f(a, b):
        return torch.tanh(F.dropout(a * 2, p, training=True)) + b

    jfn = thunder.jit(f, fuse_random=True)
    with torch.no_grad():
        seed, offset = _expected_state(device)
        out = jfn(x, w)
    keep = _reference_keep((128, 512), seed, offset, p, device)
    ref = torch.tanh(torch.where(keep, x * 2 * (1 / (1 - p)), 0.0)) + w.detach()
    torch.testing.assert_close(out, ref)
    fwd = str(thunder.last_traces(jfn)[-1])
    assert "prims.uniform_philox" in fwd and "torch.nn.functional.dropout" not in fwd

    # Without grad, an input that requires grad draws in the kernel as well.
    jfw = thunder.jit(lambda a: F.dropout(a, p, training=True) * 3, fuse_random=True)
    with torch.no_grad():
        seed, offset = _expected_state(device)
        out = jfw(w)
    keep = _reference_keep((128, 512), seed, offset, p, device)
    torch.testing.assert_close(out, torch.where(keep, w.detach() * (1 / (1 - p)), 0.0) * 3)

    seed, offset = _expected_state(device)
    out = jfn(x, w)  # training: x needs no grad, w does
    keep = _reference_keep((128, 512), seed, offset, p, device)
    ref = torch.tanh(torch.where(keep, x * 2 * (1 / (1 - p)), 0.0)) + w
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    torch.testing.assert_close(w.grad, torch.ones_like(w))
    assert "prims.uniform_philox" in str(thunder.last_traces(jfn)[-1])
