"""Host cost on CUDA, microseconds per call with calls queued back to back: one fused kernel call and
its parts (allocation, strides, data pointers, the current stream) against eager's simplest calls;
the attention of thunder's training programs (ltorch.sdpa_autograd_forward + _backward) with torch's
kernel called directly against through torch autograd, at GPT-2-size heads and small ones, which
kernel torch picks (torch.nn.attention.SDPBackend's value) and the two paths' largest difference."""
import sys
import time

import torch

sys.path.insert(0, ".")
import thunder  # noqa: E402
from thunder.core import autograd as ag  # noqa: E402
from thunder.executors import fusionex  # noqa: E402


def host_us(f, n=2000):
    for _ in range(50):
        f()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        f()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6


def launches():
    x = torch.randn(64, 256, device="cuda")
    w = torch.randn(256, device="cuda")
    b = torch.randn(256, device="cuda")
    jf = thunder.jit(lambda x, w, b: torch.nn.functional.gelu(x * w + b) * 0.5 + x)
    jf(x, w, b)
    (fk,) = fusionex.fusion_kernels(jf)
    jf2 = thunder.jit(lambda x, w, b: (torch.tanh(x * w + b), torch.sigmoid(x - b), x * 2 + w))
    jf2(x, w, b)
    (fk2,) = fusionex.fusion_kernels(jf2)
    stream = torch._C._cuda_getCurrentRawStream
    rows = {
        "fused kernel, 3 inputs 1 output (direct)": lambda: fk(x, w, b),
        "fused kernel, 3 inputs 3 outputs (direct)": lambda: fk2(x, w, b),
        "jitted call of the first": lambda: jf(x, w, b),
        "eager torch.add(x, x)": lambda: torch.add(x, x),
        "eager x.clone()": lambda: x.clone(),
        "torch.empty_strided((64, 256), (256, 1))": lambda: torch.empty_strided(
            (64, 256), (256, 1), dtype=torch.float32, device=x.device),
        "x.stride() x3": lambda: (x.stride(), w.stride(), b.stride()),
        "x.data_ptr() x4": lambda: (x.data_ptr(), w.data_ptr(), b.data_ptr(), x.data_ptr()),
        "current raw stream": lambda: stream(0),
        "x.view(64, 256)": lambda: x.view(64, 256),
        "torch.reshape(x, (256, 64))": lambda: torch.reshape(x, (256, 64)),
        "x[:, 16:48]": lambda: x[:, 16:48],
        "python call of a no-op lambda": lambda: None,
    }
    print("a fused kernel's call and its parts:")
    for name, f in rows.items():
        print(f"  {host_us(f):7.2f} us  {name}")


def attention():
    print("attention forward + backward of a training program (host us per call):")
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for shape, p in (((8, 12, 1024, 64), 0.0), ((8, 12, 1024, 64), 0.1), ((2, 4, 33, 64), 0.0),
                         ((1, 2, 16, 40), 0.0)):
            q, k, v = (torch.randn(shape, device="cuda", dtype=dtype) for _ in range(3))
            g = torch.randn(shape, device="cuda", dtype=dtype)
            choice = int(torch._fused_sdp_choice(q, k, v, None, p, True))
            needs = (True, True, True)

            def step(q=q, k=k, v=v, g=g, p=p, needs=needs):
                out, h = ag.sdpa_autograd_forward(q, k, v, None, p, True, None, False)
                return out, ag.sdpa_autograd_backward(g, h, q, k, v, needs), h

            direct = ag._sdpa_direct
            torch.manual_seed(3)
            out_d, grads_d, h = step()
            used = "direct" if hasattr(h, "_thunder_sdpa") else "autograd"
            t_direct = host_us(step)
            ag._sdpa_direct = lambda *a: None
            try:
                torch.manual_seed(3)
                out_f, grads_f, _ = step()
                t_fallback = host_us(step)
            finally:
                ag._sdpa_direct = direct
            diff = max((a.float() - b.float()).abs().max().item()
                       for a, b in zip((out_d, *grads_d), (out_f, *grads_f)))
            print(f"  {dtype!s:15s} {shape!s:18s} dropout {p}: choice {choice}, {used}: "
                  f"{t_direct:7.1f} us, through autograd {t_fallback:7.1f} us, "
                  f"largest difference {diff:.3g}")


def main():
    assert torch.cuda.is_available(), "needs CUDA"
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    launches()
    attention()


if __name__ == "__main__":
    main()
