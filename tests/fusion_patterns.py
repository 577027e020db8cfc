"""The fusion patterns the CPU and CUDA fuser tests (and the GPU benchmark's checks) share."""

import torch
import torch.nn.functional as F


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


def norm_values_and_grads_match(jfn, fn, inputs, dtype, cotangent=None):
    """Asserts jfn(*inputs) equals fn's eager result, and each input's gradient eager's within the
    dtype's tolerance scaled by that gradient's largest element (a normalization's weight gradient
    sums many products), each call on its own leaf copies of the inputs. The cotangent is random
    unless given."""
    ins = [tuple(t.detach().clone().to(dtype).requires_grad_() for t in inputs) for _ in range(2)]
    outs = [f(*a) for f, a in zip((jfn, fn), ins)]
    tol = {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 5e-2, "rtol": 2e-2}
    torch.testing.assert_close(outs[0], outs[1], **tol)
    cot = torch.randn_like(outs[1]) if cotangent is None else cotangent.to(dtype)
    for out in outs:
        out.backward(cot)
    for got, want in zip(*ins):
        scale = max(want.grad.abs().max().item(), 1.0)
        torch.testing.assert_close(got.grad, want.grad, atol=tol["atol"] * scale, rtol=tol["rtol"])
