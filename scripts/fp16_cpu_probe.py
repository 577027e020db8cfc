"""Which fused CPU fp16 pattern differs from eager on this machine, and by how much (a diagnostic for
compilers whose _Float16 arithmetic differs, e.g. GCC 13 with AVX512-FP16)."""
import subprocess
import sys

import torch

sys.path.insert(0, "tests")
import thunder  # noqa: E402
from thunder.executors import fusionex  # noqa: E402
from fusion_patterns import gelu_chain, layer_norm  # noqa: E402

ex = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("probe_all", min_cpu_numel=0))
torch.manual_seed(0)
x, w, b = (torch.randn(16, 300).half(), torch.randn(300).half(), torch.randn(300).half())
flags = open("/proc/cpuinfo").read()
print("cpu avx512fp16:", "avx512fp16" in flags, " avx512bf16:", "avx512_bf16" in flags)
print(subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()[0])
for fn in (gelu_chain, layer_norm):
    got, want = thunder.jit(fn, executors=[ex])(x, w, b), fn(x, w, b)
    ref32 = fn(x.float(), w.float(), b.float())
    bad = (got != want).sum().item()
    print(f"{fn.__name__}: {bad} of {got.numel()} differ from eager; max |thunder - fp32| "
          f"{(got.float() - ref32).abs().max().item():.3g}, max |eager - fp32| {(want.float() - ref32).abs().max().item():.3g}")
