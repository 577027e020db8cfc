"""A ResNet-18 training step on the GPU: eager, thunder (default executors) and, with --compile,
torch.compile, side by side in one process, from the same weights and batch.

Model: ResNet-18 as torchvision builds it (written out here: a 7 x 7 stem convolution, BatchNorm,
ReLU, 3 x 3 max pooling, four stages of two basic blocks, global average pooling, a linear layer),
1000 classes, batch `--batch` of 3 x 224 x 224 images, bf16 autocast, cross-entropy inside the
compiled module, SGD with momentum outside it. BatchNorm updates its running statistics in place.

Correctness: with `--check`, the loss and the gradients of one step of each variant against eager's
(bf16 tolerances: the largest difference relative to the parameter's largest gradient entry).
Timing: `--warmup` steps, then `--steps` steps between CUDA synchronisations, repeated `--repeats`
times with the variants interleaved; the figure is the median step time. Writes --out (JSON).

With `--profile`, each variant's kernels over three steps (torch.profiler), largest first and summed
by kind (convolutions, normalisation, pooling, thunder's fused kernels, ...); with `--traces DIR`,
thunder's final forward and backward programs are written there.

    python benchmarks/resnet_gpu.py [--batch 32] [--check] [--compile] [--profile] [--traces DIR]
                                    [--out resnet_gpu.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch
import torch.nn.functional as F
from torch import nn
from training_gpu import (  # a bf16-autocast training step
    interleaved_step_times,
    kernel_profiles,
    step_fn,
)

import thunder


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x, labels):
        h = self.layers(self.stem(x))
        return F.cross_entropy(self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)), labels)


# Kernel kinds by name, first match wins (cuDNN's and CUTLASS's convolution kernels have many names).
KINDS = (("thunder fused", ("thunder_",)), ("torch.compile fused", ("triton_",)),
         ("convolution", ("conv", "xmma", "cudnn", "implicit", "gemm", "wgrad", "dgrad", "cutlass", "sm90", "sm80",
                          "nhwc", "nchw")),
         ("batch_norm", ("batch_norm", "bn_")), ("pooling", ("pool",)),
         ("reduction", ("reduce",)), ("elementwise", ("elementwise", "vectorized", "unrolled")))


def kinds_of(profile: dict) -> dict:
    """Microseconds a step by kernel kind."""
    out = {}
    for row in profile["top"]:
        name = row["kernel"].lower()
        kind = next((k for k, keys in KINDS if any(key in name for key in keys)), "other")
        out[kind] = out.get(kind, 0.0) + row["us_per_step"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--traces", default="")
    ap.add_argument("--out", default="resnet_gpu.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    base = ResNet18().cuda().to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,), device="cuda")
    models = {"eager": copy.deepcopy(base), "thunder": thunder.jit(copy.deepcopy(base))}
    if args.compile:
        models["torch.compile"] = torch.compile(copy.deepcopy(base))
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": args.batch}
    if args.check:
        grads = {}
        for name, m in models.items():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = m(x, y)
            loss.backward()
            grads[name] = (loss.item(), [p.grad.float().clone() for p in m.parameters()])
            for p in m.parameters():
                p.grad = None
        ref_loss, ref = grads.pop("eager")
        for name, (loss, gs) in grads.items():
            err = max((a - b).abs().max().item() / (b.abs().max().item() + 1e-6) for a, b in zip(gs, ref))
            print(f"  check {name}: loss {loss:.5f} (eager {ref_loss:.5f}), largest relative gradient difference "
                  f"{err:.2e}", flush=True)
            report[f"check {name}"] = {"loss": loss, "eager_loss": ref_loss, "max_rel_grad_err": err}
        # The check's forward updated every variant's running statistics once: they stay equal.
    steps = {}
    for name, m in models.items():
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        steps[name] = step_fn(m, opt, x, y)
        t0 = time.perf_counter()
        steps[name]()
        torch.cuda.synchronize()
        report[f"{name} first step s"] = time.perf_counter() - t0
        for _ in range(args.warmup):
            steps[name]()
    times = interleaved_step_times(steps, args.repeats, args.steps)
    print(f"{report['device']}, torch {torch.__version__}; ResNet-18, batch {args.batch} x 3 x 224 x 224, "
          "bf16 autocast, channels_last, SGD")
    print(f"{'variant':<16} {'ms/step':>8} {'vs eager':>9} {'first step s':>13}")
    eager = statistics.median(times["eager"])
    for name, ts in times.items():
        med = statistics.median(ts)
        report[name] = {"ms_per_step": med * 1e3, "vs_eager": med / eager, "samples_ms": [t * 1e3 for t in ts]}
        print(f"{name:<16} {med * 1e3:8.2f} {med / eager:9.3f} {report[f'{name} first step s']:13.2f}")
    if args.profile:
        report["profile"] = kernel_profiles(steps, top=25, keep=1000)
        for name, prof in report["profile"].items():
            prof["kinds_us"] = kinds_of(prof)
            print(f"{name}: " + ", ".join(f"{k} {v:.0f} us" for k, v in sorted(prof["kinds_us"].items(),
                                                                               key=lambda kv: -kv[1])))
    if args.traces:
        os.makedirs(args.traces, exist_ok=True)
        for stage, traces in (("forward", thunder.last_traces(models["thunder"])),
                              ("backward", thunder.last_backward_traces(models["thunder"]))):
            with open(os.path.join(args.traces, f"resnet18_{stage}.py"), "w") as f:
                f.write(str(traces[-1]))
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
