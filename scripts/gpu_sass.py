"""Machine code of thunder's CUDA kernels: the binaries NVRTC built for each named operation (read
from the kernel cache), disassembled (cuobjdump -sass) and counted by opcode, the vector and scalar
variants together. Shows where a kernel's arithmetic goes (conversions, special-function units,
library calls). Run on the GPU machine after building:
    python3 scripts/gpu_sass.py [--only text] [--keep DIR]"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("THUNDER_CACHE_DIR", tempfile.mkdtemp(prefix="thunder-sass-cache-"))

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import thunder
from thunder.executors import fusionex


def gelu_chain(x, w, b):
    return F.gelu(x * w + b) * 0.5 + x


def cases():
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        name = str(dt).replace("torch.", "")
        x = torch.randn(64, 4096, device=dev, dtype=dt)
        w, b = torch.randn(4096, device=dev, dtype=dt), torch.randn(4096, device=dev, dtype=dt)
        yield f"gelu chain {name}", gelu_chain, (x, w, b)
        yield f"erf {name}", torch.erf, (x,)
        yield f"x*w+b {name}", lambda x, w, b: (x * w + b) * 0.5 + x, (x, w, b)
        big = torch.randn(64, 50304, device=dev, dtype=dt)
        y = torch.randint(0, 50304, (64,), device=dev)
        yield f"cross_entropy fwd 50304 {name}", lambda a, t: F.cross_entropy(a.float(), t), (big, y)
        # Training steps: the backward's kernels too (their inputs require grad, the output's
        # gradient a random tensor).
        xg = torch.randn(2048, 4096, device=dev, dtype=dt, requires_grad=True)
        wg = torch.randn(4096, device=dev, dtype=dt, requires_grad=True)
        bg = torch.randn(4096, device=dev, dtype=dt, requires_grad=True)
        yield f"layer_norm fwd+bwd 4096 {name}", lambda x, w, b: F.layer_norm(x, (4096,), w, b), (xg, wg, bg)
        yield f"rms_norm fwd+bwd 4096 {name}", lambda x, w: F.rms_norm(x, (4096,), w, 1e-5), (xg, wg)


def histogram(sass):
    ops = collections.Counter()
    for line in sass.splitlines():
        m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if m:
            ops[m.group(1)] += 1
    return ops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", default="")
    args = ap.parse_args()
    out = args.keep or tempfile.mkdtemp(prefix="thunder-sass-")
    os.makedirs(out, exist_ok=True)
    cache = os.path.join(os.environ["THUNDER_CACHE_DIR"], "kernels")
    os.makedirs(cache, exist_ok=True)
    for name, fn, inputs in cases():
        if args.only and args.only not in name:
            continue
        before = set(os.listdir(cache))
        jfn = thunder.jit(fn, executors=[thunder.fusion_executor])
        res = jfn(*inputs)
        if res.requires_grad:
            res.backward(torch.randn_like(res))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        cubins = sorted(f for f in set(os.listdir(cache)) - before if f.endswith(".cubin"))
        for i, cubin in enumerate(cubins):
            stem = os.path.join(out, re.sub(r"\W+", "_", name) + f"_{i}")
            r = subprocess.run(["cuobjdump", "-sass", os.path.join(cache, cubin)], capture_output=True, text=True, check=False)
            with open(stem + ".sass", "w") as f:
                f.write(r.stdout)
            ops = histogram(r.stdout)
            print(f"{name} binary {i}: {sum(ops.values())} instructions{'' if r.returncode == 0 else ' ' + r.stderr[:300]}")
            print("   " + ", ".join(f"{op} {n}" for op, n in ops.most_common(40)))
        kernels = list(fusionex.fusion_kernels(jfn))
        if res.requires_grad:
            kernels += [k for t in thunder.last_backward_traces(jfn)[-1:] for k in t.fusion_callables]
        for i, k in enumerate(kernels):
            with open(os.path.join(out, re.sub(r"\W+", "_", name) + f"_{i}.cu"), "w") as f:
                f.write(k.source())


if __name__ == "__main__":
    main()
