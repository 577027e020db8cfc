"""thunder's fusion executor, `fusion`: maximal regions of fusible primitives become generated kernels
(C++ compiled by the system compiler on the CPU, CUDA C++ compiled with NVRTC on the GPU).

The executor is registered as `fusion` and is one of the default executors (THUNDER_FUSION=0 leaves
it out of them; it can still be passed in `executors=`). It takes a torch-level operation when its whole
decomposition is fusible (elementwise, broadcasts, conversions, views that are indexing, reductions,
`where`); matmuls, attention and everything else stay with the executors that claim them. Each region
prints in the final trace as `t5 = fusion0(a, b)` with the fused primitives as comments beneath, and
`thunder.fusion_source(jfn, 0)` returns the generated source of a region.

A region made of one elementwise torch operation is left to torch (its own kernel is as good), and so
is a CPU region whose tensors all have fewer than `min_cpu_numel` elements (default 4096, or
THUNDER_FUSION_MIN_NUMEL): a compile costs ~0.1 s there, a kernel over so few elements saves
microseconds per call. Kernels of one program compile in parallel (one compile per core) and are cached
on disk (see `cache_stats`). Where no compiler (CPU) or no CUDA driver and NVRTC (GPU) is found, the
executor takes nothing on that device and logs why once at debug level (logger `thunder.fusion`).
"""

from __future__ import annotations

import logging
import os

from thunder import _core
from thunder.extend import Executor

__all__ = ["ThunderFusionExecutor", "fusion_source", "fusion_kernels", "cache_stats", "available"]

log = logging.getLogger("thunder.fusion")
_availability: dict[str, tuple[bool, str]] = {}


def enabled_by_default() -> bool:
    """True unless THUNDER_FUSION=0: the executor is one of the default executors. On a device where
    no kernels can be built (no C++ compiler; no CUDA driver or NVRTC) it takes nothing."""
    return os.environ.get("THUNDER_FUSION", "1") != "0"


def default_min_cpu_numel() -> int:
    """The size under which CPU regions are left to torch: THUNDER_FUSION_MIN_NUMEL, else 4096."""
    return int(os.environ.get("THUNDER_FUSION_MIN_NUMEL", "4096"))


def available(device: str = "cpu") -> bool:
    """True when kernels can be compiled for `device` ('cpu' or 'cuda'); checked once, lazily."""
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    if kind not in _availability:
        ok, why = _core.fuser_available(kind)
        _availability[kind] = (ok, why)
        if not ok:
            log.debug("thunder's fusion executor is off on %s: %s", kind, why)
    return _availability[kind][0]


class ThunderFusionExecutor(Executor):
    """The fusion executor. `cpu`/`cuda` False keeps it off a device type; a CPU region whose tensors
    all have fewer than `min_cpu_numel` elements is left to torch (None: `default_min_cpu_numel()`).

    Fused kernels record no autograd graph, which no program needs: training programs get their
    gradients from thunder's autograd, inference programs record nothing. Tensors that require grad are
    therefore fused, except in programs that turn grad mode on inside (`torch.enable_grad()` in a
    function called under `torch.no_grad()`), which thunder.jit compiles with `grad_recording_core`."""

    def __init__(self, name: str = "fusion", *, cpu: bool = True, cuda: bool = True,
                 min_cpu_numel: int | None = None):
        super().__init__(name)
        if min_cpu_numel is None:
            min_cpu_numel = default_min_cpu_numel()
        self.min_cpu_numel = min_cpu_numel
        self._fusing_core = _core.make_fusion_executor(name, cpu, cuda, available, min_cpu_numel, True)
        self.grad_recording_core = _core.make_fusion_executor(name, cpu, cuda, available, min_cpu_numel,
                                                              False)

    @property
    def _core(self):
        return self._fusing_core

    @_core.setter
    def _core(self, value):  # the base class's default core, replaced in __init__
        pass


def fusion_kernels(jfn, trace_index: int = -1) -> list:
    """The fused kernels of the last program `jfn` ran (its final trace by default), in trace order."""
    import thunder

    traces = thunder.last_traces(jfn)
    return list(traces[trace_index].fusion_callables)


def fusion_source(jfn, index: int = 0) -> str:
    """The generated source of fused region `index` (fusion<index>) of the last program `jfn` ran."""
    kernels = fusion_kernels(jfn)
    if not kernels:
        raise ValueError("the last program has no fused regions")
    for k in kernels:
        if k.name.endswith(str(index)) and k.name[len(k.name.rstrip("0123456789")):] == str(index):
            return k.source()
    raise IndexError(f"no fused region {index}; the program has {len(kernels)}")


def cache_stats() -> dict:
    """Kernel compiles, disk and memory cache hits and rejected (rebuilt) cache entries in this process."""
    return dict(_core.fuser_cache_stats())
