"""Schedule probes on CUDA: the same operation under different schedules or formulations, timed side
by side in one process (bandwidth over a device-to-device copy's, bytes read once + written once).
  - wide rows kept in shared memory (the default where they fit) against rows read through L2 once
    per pass (THUNDER_CUDA_SMEM_LIMIT=49152), for softmax and the cross-entropy forward;
  - the bf16 pointwise chain with eager's roundings against the same chain computed in fp32
    throughout, and without its erf: how much of its time is arithmetic.
Run on the GPU machine after building: python3 scripts/gpu_schedule_probe.py [--pointwise-only] [--out probe.json]"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from fusion_gpu import bench, copy_bandwidth, cross_entropy, gelu_chain, softmax

import thunder
from thunder.executors import fusionex

_executors = {}


def probe(name, fn, args, nbytes, env=None, ptxas=False):
    """Times fn jitted with the variables in `env` set while its kernels are generated (each variant
    through its own executor: a region fused again by the same executor reuses its kernel)."""
    env = env or {}
    key = tuple(sorted(env.items()))
    if key not in _executors:
        _executors[key] = thunder.extend.register_executor(
            fusionex.ThunderFusionExecutor(f"probe{len(_executors)}"))
    os.environ.update(env)
    try:
        jfn = thunder.jit(fn, executors=[_executors[key]])
        jfn(*args)  # kernels are built here, with the variables in force
        regs = ""
        if ptxas:
            os.environ["THUNDER_NVRTC_FLAGS"] = "--ptxas-options=-v"
            for k in fusionex.fusion_kernels(jfn):
                limit = int(env.get("THUNDER_CUDA_SMEM_LIMIT", 227 * 1024))  # an H100's or H200's
                src = thunder._core.fuser_cuda_source(k, limit)[0]
                _, log, _ = thunder._core.fuser_nvrtc_compile(src, 90)
                regs += " | " + " ".join(line.split("ptxas info    : ")[-1] for line in log.splitlines()
                                         if "Used" in line or "spill" in line)[:200]
    finally:
        for k in (*env, "THUNDER_NVRTC_FLAGS"):
            os.environ.pop(k, None)
    t = bench(lambda: jfn(*args))
    ratio = nbytes / t / copy_bandwidth(nbytes)
    print(f"{name:58s} {t * 1e6:9.1f} us {ratio:6.2f} of copy{regs}", flush=True)
    return {"name": name, "us": t * 1e6, "vs_copy": ratio, "ptxas": regs}


ROW_VARIANTS = {
    "": {},
    "rows through L2": {"THUNDER_CUDA_SMEM_LIMIT": "49152"},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    ap.add_argument("--pointwise-only", action="store_true")
    args = ap.parse_args()
    rows = []
    for dt in (torch.float32, torch.bfloat16) if not args.pointwise_only else ():
        es = torch.finfo(dt).bits // 8
        x = torch.randn(2048, 50304, device="cuda", dtype=dt)
        y = torch.randint(0, 50304, (2048,), device="cuda")
        n = x.numel() * es
        for vname, env in ROW_VARIANTS.items():
            rows.append(probe(f"softmax 2048x50304 {dt} {vname}", softmax, (x,), 2 * n, env, ptxas=True))
        for vname, env in ROW_VARIANTS.items():
            rows.append(probe(f"cross_entropy fwd 2048x50304 {dt} {vname}", cross_entropy, (x, y), n, env,
                              ptxas=True))
        del x
    x = torch.randn(8192, 4096, device="cuda", dtype=torch.bfloat16)
    w, b = torch.randn(4096, device="cuda", dtype=torch.bfloat16), torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    n = 2 * x.numel() * 2
    variants = {
        "gelu chain bf16, eager's roundings": gelu_chain,
        "gelu chain bf16, fp32 throughout": lambda x, w, b: (F.gelu(x.float() * w.float() + b.float()) * 0.5
                                                             + x.float()).bfloat16(),
        "gelu chain bf16, tanh gelu": lambda x, w, b: F.gelu(x * w + b, approximate="tanh") * 0.5 + x,
        "chain bf16 without gelu": lambda x, w, b: (x * w + b) * 0.5 + x,
        "x + 1 bf16": lambda x, w, b: x + 1,
    }
    for name, fn in variants.items():
        rows.append(probe(name, fn, (x, w, b), n, ptxas=True))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
