"""gelu of every finite fp16 value, computed as eager's CUDA kernel does (in fp32:
x * 0.5 * (1 + erf(x / sqrt(2))), each operation rounded to fp32, then rounded to fp16) with three
erfs: the exact erf rounded to fp32 (erff, within an ulp of it), thunder's th_erf_as (Abramowitz and
Stegun 7.1.26, rounded as fp32 operations; the hardware's approximate reciprocal and exponential are
taken as exactly rounded), and th_erf_as_lin (th_erf_as with erf's linear term near 0). Prints how
many fp16 results each gives that differ from the exactly computed gelu rounded to fp16, and from
erff's. Runs on the CPU:
    python3 scripts/fp16_gelu_erf_check.py"""
import math

import torch


def r32(t):
    return t.float().double()


def fma(a, b, c):
    return r32(a * b + c)  # the float64 product of two fp32 values is exact


def erf_as(s):
    a = s.abs()
    t = r32(1.0 / fma(torch.tensor(0.2727374808792225).float().double(), a, 1.0))
    e = r32(torch.exp2(-r32(a * a)))
    p = fma(r32(torch.tensor(1.061405429)), t, r32(torch.tensor(-1.453152027)))
    for c in (1.421413741, -0.284496736, 0.254829592):
        p = fma(p, t, r32(torch.tensor(c)))
    return torch.copysign(fma(-r32(p * t), e, 1.0), s)


def units(a, b):
    ia, ib = (t.view(torch.int16).int() for t in (a, b))
    ia = torch.where(ia < 0, -(ia & 0x7FFF), ia)
    ib = torch.where(ib < 0, -(ib & 0x7FFF), ib)
    return (ia - ib).abs()


def main():
    u = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.float16)
    u = u[u.isfinite()].double()
    half = r32(u * 0.5)
    z = r32(u * r32(torch.tensor(1 / math.sqrt(2))))
    s = r32(u * r32(torch.tensor(1.2011224087864498 / math.sqrt(2))))  # the argument scaled by sqrt(log2 e)
    lin = torch.where(s.abs() < r32(torch.tensor(0.004691884)), r32(s * r32(torch.tensor(0.9394372786996513))), erf_as(s))
    erfs = {"erff": r32(torch.erf(z)), "th_erf_as": erf_as(s), "th_erf_as_lin": lin}
    exact = (0.5 * u * (1 + torch.erf(u / math.sqrt(2)))).half()
    gelu = {k: r32(half * r32(1 + e)).half() for k, e in erfs.items()}
    print(f"{len(u)} finite fp16 inputs")
    for k, g in gelu.items():
        for ref_name, ref in (("exact", exact), ("erff", gelu["erff"])):
            d = units(g, ref)
            mid = d[u.abs() <= 3]
            print(f"{k:14s} vs {ref_name:5s}: {int((d > 0).sum()):4d} differ ({(d > 0).float().mean().item():.3%}), "
                  f"max {int(d.max())} units; in [-3, 3]: {int((mid > 0).sum())} differ, max {int(mid.max())}")


if __name__ == "__main__":
    main()
