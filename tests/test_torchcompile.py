"""The torchcompile executor: maximal regions of torch operations compiled by torch.compile, printed
as one call each, forward and backward against eager. torch.compile costs seconds per region, so
these tests compile few."""

from __future__ import annotations

import pytest
import torch

import thunder
from thunder.executors.torchcompileex import compiled_regions, region_source

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _executors():
    return [thunder.extend.get_executor("torchcompile"), *thunder.get_always_executors()]


def _mlp(x, w1, w2):
    h = torch.nn.functional.gelu(x @ w1) * 0.5
    noise = torch.rand_like(h)          # random: stays outside the regions, as eager draws it
    return ((h + noise * 0) @ w2).tanh().sum()


def _check_mlp(device):
    torch.manual_seed(0)
    x = torch.randn(8, 16, device=device, requires_grad=True)
    w1 = torch.randn(16, 32, device=device, requires_grad=True)
    w2 = torch.randn(32, 4, device=device, requires_grad=True)
    ref = [t.detach().clone().requires_grad_() for t in (x, w1, w2)]
    jf = thunder.jit(_mlp, executors=_executors())
    out = jf(x, w1, w2)
    expected = _mlp(*ref)
    torch.testing.assert_close(out, expected)
    out.backward()
    expected.backward()
    for got, want in zip((x, w1, w2), ref):
        torch.testing.assert_close(got.grad, want.grad)
    final = str(thunder.last_traces(jf)[-1])
    regions = compiled_regions(jf)
    assert len(regions) == 2, final
    assert "= TorchCompile0(x, w1)" in final and "= TorchCompile1(" in final
    top = thunder.last_traces(jf)[-1].python(False)
    assert "= torch.rand_like(t" in top, top
    assert all("rand" not in r.source for r in regions)
    src = region_source(jf, 0)
    assert "def TorchCompile0(x, w1):" in src and "torch.matmul(x, w1)" in src
    assert "torch.nn.functional.gelu" in src
    return jf


def test_torchcompile_regions_forward_and_backward_cpu():
    jf = _check_mlp("cpu")
    # Another jit of the same function reuses the compiled regions (cached by their source).
    ex = thunder.extend.get_executor("torchcompile")
    before = len(ex._compiled)
    jf2 = thunder.jit(_mlp, executors=_executors())
    jf2(*(torch.randn(s, requires_grad=True) for s in ((8, 16), (16, 32), (32, 4))))
    assert len(ex._compiled) == before
    assert compiled_regions(jf2)[0].fn is compiled_regions(jf)[0].fn


@requires_cuda
def test_torchcompile_regions_forward_and_backward_cuda():
    _check_mlp("cuda")
