"""ResNet-18's gradients on the GPU against a float64 reference: eager's and thunder's float32
gradients (TF32 off, deterministic cuDNN), NCHW and channels_last, and eager run twice. Prints each
comparison's largest difference relative to the parameter's largest gradient entry.

    python3 scripts/resnet_grad_accuracy.py
"""

import copy
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, ROOT)
from resnet_gpu import ResNet18

import thunder


def grads(m, x, y):
    m(x, y).backward()
    return {n: p.grad.double() for n, p in m.named_parameters()}


def rel(a, b):
    return {n: (a[n] - b[n]).abs().max().item() / (b[n].abs().max().item() + 1e-30) for n in b}


def main():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.manual_seed(0)
    base = ResNet18().cuda()
    x = torch.randn(32, 3, 224, 224, device="cuda")
    y = torch.randint(0, 1000, (32,), device="cuda")
    for channels_last in (False, True):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        xx = x.to(memory_format=fmt)

        def model(fmt=fmt):
            return copy.deepcopy(base).to(memory_format=fmt)

        ref = grads(model().double(), xx.double(), y)
        eager = grads(model(), xx, y)
        mine = grads(thunder.jit(model()), xx, y)
        again = grads(model(), xx, y)
        for name, r in (("eager fp32 vs fp64", rel(eager, ref)), ("thunder fp32 vs fp64", rel(mine, ref)),
                        ("eager fp32 run 2 vs run 1", rel(again, eager))):
            top = sorted(r.items(), key=lambda kv: -kv[1])[:3]
            print(f"channels_last={channels_last} {name:26s} max {top[0][1]:.2e}  "
                  + ", ".join(f"{n}={v:.1e}" for n, v in top))


if __name__ == "__main__":
    main()
