"""Host time per call on CUDA of thunder's jitted calls against eager (inference call of one fused
kernel; cross-entropy training step), with a cProfile of thunder's step: where the host time goes."""
import cProfile
import pstats
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, ".")
import thunder  # noqa: E402


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def host_us(f, n=300):
    for _ in range(20):
        f()
    sync()
    t = time.perf_counter()
    for _ in range(n):
        f()
    sync()
    return (time.perf_counter() - t) / n * 1e6


DEV = "cuda" if torch.cuda.is_available() else "cpu"
x = torch.randn(64, 512, device=DEV, requires_grad=True)
y = torch.randint(0, 512, (64,), device=DEV)
ce = lambda a, b: F.cross_entropy(a, b)  # noqa: E731
jce = thunder.jit(ce)
sm = lambda a: torch.softmax(a, -1)  # noqa: E731
jsm = thunder.jit(sm)


def step(f):
    x.grad = None
    f(x, y).backward()


xs = x.detach()
with torch.no_grad():
    print(f"softmax no_grad call: eager {host_us(lambda: sm(xs)):.1f} us, thunder {host_us(lambda: jsm(xs)):.1f} us")
print(f"cross_entropy forward (grad): eager {host_us(lambda: ce(x, y)):.1f} us, thunder {host_us(lambda: jce(x, y)):.1f} us")
print(f"cross_entropy training step: eager {host_us(lambda: step(ce)):.1f} us, thunder {host_us(lambda: step(jce)):.1f} us")
pr = cProfile.Profile()
pr.enable()
for _ in range(500):
    step(jce)
sync()
pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(22)

# Where one fused inference call's host time goes: the cross-entropy forward at 2048x4096 (two
# kernels) as a whole, each of its fused kernels called alone, and the torch calls each makes.
xb = torch.randn(2048, 4096, device=DEV)
yb = torch.randint(0, 4096, (2048,), device=DEV)
with torch.no_grad():
    jbig = thunder.jit(ce)
    jbig(xb, yb)
    parts = {"whole jitted call": lambda: jbig(xb, yb), "eager call": lambda: ce(xb, yb)}
    ks = list(thunder.last_traces(jbig)[-1].fusion_callables)
    rows_loss = ks[0](xb, yb)
    parts["fused kernel 0 alone"] = lambda: ks[0](xb, yb)
    if len(ks) > 1:
        parts["fused kernel 1 alone"] = lambda: ks[1](yb, rows_loss)
    parts["torch.empty(2048)"] = lambda: torch.empty((2048,), dtype=torch.float32, device=xb.device)
    parts["torch.empty(())"] = lambda: torch.empty((), dtype=torch.float32, device=xb.device)
    # Other ways to allocate an output (which of them is cheapest on this host).
    dev_obj, dt = xb.device, torch.float32
    parts["torch.empty(2048, dtype=, device=obj)"] = lambda: torch.empty(2048, dtype=dt, device=dev_obj)
    parts["torch.empty(2048, dtype=, device='cuda:0')"] = lambda: torch.empty(2048, dtype=dt, device=str(dev_obj))
    parts["xb.new_empty((2048,))"] = lambda: xb.new_empty((2048,))
    parts["xb.new_empty(2048)"] = lambda: xb.new_empty(2048)
    parts["torch.empty_strided((2048,), (1,))"] = lambda: torch.empty_strided((2048,), (1,), dtype=dt, device=dev_obj)
    parts["torch.empty_like(yb) (2048)"] = lambda: torch.empty_like(yb)
    ve = torch._C._VariableFunctions.empty
    parts["_VariableFunctions.empty(2048)"] = lambda: ve(2048, dtype=dt, device=dev_obj)
    jid = thunder.jit(lambda a: a)
    jid(xb)
    parts["jitted identity (guards, no kernel)"] = lambda: jid(xb)
    jmul = thunder.jit(lambda a: a * 2)
    jmul(yb)
    parts["jitted y * 2 (one fused kernel)"] = lambda: jmul(yb)
    parts["eager y * 2"] = lambda: yb * 2
    parts["x.stride()"] = lambda: xb.stride()
    parts["x.data_ptr()"] = lambda: xb.data_ptr()
    if DEV == "cuda":
        parts["raw current stream"] = lambda: torch._C._cuda_getCurrentRawStream(0)
    parts["eager y.clone() (a launch)"] = lambda: yb.clone()
    for name, f in parts.items():
        print(f"{name:32s} {host_us(f, 2000):7.2f} us per call")
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(2000):
        jbig(xb, yb)
    sync()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(12)
