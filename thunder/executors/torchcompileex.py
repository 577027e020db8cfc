"""The `torchcompile` executor: hands maximal regions of torch operations to `torch.compile`.

It is a FusionExecutor (thunder.extend): it takes every operation the torch executor can run whose
decomposition is free of random draws, in-place updates and complex numbers, on the CPU or on CUDA.
The core partitions what it took into maximal acyclic regions; each region becomes a plain Python
function of torch calls, compiled with `torch.compile(dynamic=False)`. The final trace prints each
region as one call, `t3 = TorchCompile0(x, w)`, with the torch calls of its function beneath it as
comments; `region_source(jfn, 0)` returns the function's source. Compiled functions are cached by
that source, which names the operations and the inputs' shapes, dtypes and devices, so recompiling
a program (another cache entry, a new jit of the same function) reuses them.

Random operations stay outside regions: torch.compile draws random numbers differently from eager,
and thunder's programs consume the generator exactly as eager does.
"""

from __future__ import annotations

import torch

from thunder import _core
from thunder.extend import FusionExecutor

__all__ = ["TorchCompileExecutor", "region_source", "compiled_regions"]

_SKIP_TAGS = {"random", "inplace", "dont_dce"}
_DEVICES = ("cpu", "cuda")


def _proxies(x, out):
    if isinstance(x, _core.ProxyHandle):
        out.append(x)
    elif isinstance(x, (list, tuple)):
        for i in x:
            _proxies(i, out)
    elif isinstance(x, dict):
        for i in x.values():
            _proxies(i, out)
    return out


def _lookup(namespace, qualname):
    head, *rest = qualname.split(".")
    obj = namespace.get(head)
    for part in rest:
        obj = getattr(obj, part, None)
    return obj


class _Region:
    """A compiled region: what the trace calls. Keeps the source it was compiled from."""

    __slots__ = ("name", "source", "fn")

    def __init__(self, name, source, fn):
        self.name, self.source, self.fn = name, source, fn

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return f"<torch.compile region {self.name}>"


class TorchCompileExecutor(FusionExecutor):
    """Regions of torch operations compiled by torch.compile. `torch_executor` runs the region's
    operations (default: thunder's torch executor); extra keyword arguments go to torch.compile."""

    def __init__(self, name: str = "torchcompile", *, torch_executor=None, **compile_options):
        super().__init__(name)
        self._torch = torch_executor
        self._options = dict(compile_options, dynamic=False)
        self._tags = {}
        self._compiled = {}  # region source -> compiled function

    def _torch_core(self):
        if self._torch is None:
            from thunder.extend import get_executor

            self._torch = get_executor("torch")
        return self._torch._core

    def can_fuse(self, bsym) -> bool:
        sym = bsym.sym
        tags = self._tags.get(sym.qualname)
        if tags is None:
            tags = self._tags[sym.qualname] = set(_core.symbol_tags(sym))
        if tags & _SKIP_TAGS or not self._torch_core().implements(sym):
            return False
        for p in _proxies(bsym.args, _proxies(bsym.output, [])):
            if p.device.split(":")[0] not in _DEVICES or p.dtype.is_complex:
                return False
        return True

    def fuse(self, region, index: int):
        name = f"TorchCompile{index}"
        source = region.source(name)
        key = region.source("region")  # the same operations on the same inputs, whatever the index
        fn = self._compiled.get(key)
        if fn is None:
            namespace = {}
            exec(compile(source, f"<thunder region {name}>", "exec"), namespace)
            # Every call in the function must be the callable the torch executor would run.
            for b in region.bound_symbols:
                if b.callable is None or _lookup(namespace, b.sym.qualname) is not b.callable:
                    return None
            fn = torch.compile(namespace[name], **self._options)
            self._compiled[key] = fn
        return name, _Region(name, source, fn)


def compiled_regions(jfn, trace_index: int = -1) -> list:
    """The torch.compile regions of the last program `jfn` ran, in trace order."""
    import thunder

    trace = thunder.last_traces(jfn)[trace_index]
    return [c for c in trace.fusion_callables if isinstance(c, _Region)]


def region_source(jfn, index: int = 0) -> str:
    """The Python source of region `TorchCompile<index>` of the last program `jfn` ran."""
    for r in compiled_regions(jfn):
        if r.name == f"TorchCompile{index}":
            return r.source
    raise IndexError(f"the last program has no region TorchCompile{index}")
