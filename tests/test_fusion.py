"""thunder's fusion executor on the CPU: fused regions against eager (pointwise chains with broadcasts
and transposed inputs, softmax, log_softmax, layer_norm, rms_norm, cross-entropy, bias gradients),
edge sizes, the trace's fusion symbols, the generated source and the kernel cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.executors import fusionex

pytestmark = pytest.mark.skipif(not fusionex.available("cpu"), reason="no C++ compiler")


def _jit(fn):
    return thunder.jit(fn, executors=[thunder.fusion_executor])


def gelu_chain(x, w, b):
    return F.gelu(x * w + b) * 0.5 + x


def softmax(x):
    return torch.softmax(x, -1)


def log_softmax(x):
    return torch.log_softmax(x, -1)


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


def bias_grad(g):
    return g.sum(0)


SHAPES = [(4, 8), (33, 1027), (1, 1), (0, 5), (64, 4096)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fn", [gelu_chain, softmax, log_softmax, layer_norm, rms_norm, bias_grad],
                         ids=lambda f: f.__name__)
def test_fused_matches_eager_fp32(fn, shape):
    torch.manual_seed(0)
    x, w, b = torch.randn(shape), torch.randn(shape[-1]), torch.randn(shape[-1])
    args = {gelu_chain: (x, w, b), layer_norm: (x, w, b), rms_norm: (x, w)}.get(fn, (x,))
    torch.testing.assert_close(_jit(fn)(*args), fn(*args), equal_nan=True)


@pytest.mark.parametrize("shape", [(4, 8), (33, 1027), (1, 1)], ids=str)
def test_cross_entropy_matches_eager(shape):
    torch.manual_seed(0)
    x, y = torch.randn(shape), torch.randint(0, shape[-1], (shape[0],))
    jfn = _jit(F.cross_entropy)
    torch.testing.assert_close(jfn(x, y), F.cross_entropy(x, y))


def test_transposed_and_broadcast_inputs():
    torch.manual_seed(0)
    x = torch.randn(1027, 33).t()  # non-contiguous
    w, b = torch.randn(1027), torch.randn(1).expand(1027)  # stride-0 input
    torch.testing.assert_close(_jit(gelu_chain)(x, w, b), gelu_chain(x, w, b))


def test_nan_and_inf_propagate_like_eager():
    x = torch.tensor([[1.0, float("nan"), 2.0], [float("inf"), 0.0, -1.0], [-float("inf"), 1.0, 2.0]])
    for fn in (softmax, lambda t: torch.maximum(t * 2, t + 1) - 1):
        torch.testing.assert_close(_jit(fn)(x), fn(x), equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_low_and_high_precision(dtype):
    # Fused kernels compute bf16/fp16 values in fp32 and round once, at the store: the reference is
    # eager on fp32 copies, rounded to the dtype.
    torch.manual_seed(0)
    x, w, b = (torch.randn(16, 300).to(dtype), torch.randn(300).to(dtype), torch.randn(300).to(dtype))
    wide = torch.float64 if dtype == torch.float64 else torch.float32
    for fn in (gelu_chain, layer_norm):
        ref = fn(x.to(wide), w.to(wide), b.to(wide)).to(dtype)
        torch.testing.assert_close(_jit(fn)(x, w, b), ref)


def test_integer_and_bool_ops():
    a = torch.randint(-50, 50, (7, 9))
    fn = lambda t: torch.where(t > 0, t * 3 - 1, t & 7) + (t == 2).to(torch.int64)  # noqa: E731
    torch.testing.assert_close(_jit(fn)(a), fn(a))


def test_trace_shows_fusion_symbols_and_source():
    x, w, b = torch.randn(4, 8), torch.randn(8), torch.randn(8)
    jfn = _jit(gelu_chain)
    jfn(x, w, b)
    final = str(thunder.last_traces(jfn)[-1])
    assert "fusion0(" in final and "# t" in final and "prims.erf" in final
    src = thunder.fusion_source(jfn, 0)
    assert "thunder_kernel" in src and "erff" in src


def test_softmax_is_one_kernel():
    jfn = _jit(softmax)
    jfn(torch.randn(8, 16))
    assert len(fusionex.fusion_kernels(jfn)) == 1


def test_single_elementwise_op_is_left_to_torch():
    jfn = _jit(lambda a, b: a + b)
    jfn(torch.randn(4), torch.randn(4))
    assert fusionex.fusion_kernels(jfn) == []


def test_corrupted_cache_entry_is_rebuilt(tmp_path):
    import glob
    import os
    import subprocess
    import sys

    code = ("import torch, thunder\n"
            "j = thunder.jit(lambda x: torch.softmax(x * 3, -1), executors=[thunder.fusion_executor])\n"
            "j(torch.randn(3, 5))\n"
            "from thunder.executors import fusionex\n"
            "print(fusionex.cache_stats())\n")
    env = dict(os.environ, THUNDER_CACHE_DIR=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + sys.path)
    run = lambda: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)  # noqa: E731
    first = run()
    assert first.returncode == 0, first.stderr
    assert "'compiles': 1" in first.stdout
    second = run()
    assert "'compiles': 0" in second.stdout and "'disk_hits': 1" in second.stdout
    (entry,) = glob.glob(str(tmp_path / "kernels" / "cpu-*.so"))
    assert oct(os.stat(tmp_path / "kernels").st_mode & 0o777) == "0o700"
    with open(entry, "r+b") as f:
        f.truncate(os.path.getsize(entry) // 2)
    third = run()
    assert third.returncode == 0, third.stderr
    assert "'rejected': 1" in third.stdout and "'compiles': 1" in third.stdout
