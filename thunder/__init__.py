"""thunder: a deep-learning compiler for PyTorch with a C++ core.

    jfn = thunder.jit(fn)          # or thunder.compile(fn)
    out = jfn(*args)               # same results as fn(*args)
    print(thunder.last_traces(jfn)[-1])   # the program that ran, as Python source
"""

from __future__ import annotations

import torch as _torch

from thunder import _core

_core.set_torch_objects(
    _torch.Tensor,
    [(str(d).removeprefix("torch."), d) for d in (
        _torch.bool, _torch.uint8, _torch.int8, _torch.int16, _torch.int32, _torch.int64,
        _torch.float16, _torch.bfloat16, _torch.float32, _torch.float64, _torch.complex64,
        _torch.complex128)],
    _torch.device,
    _torch.is_grad_enabled,
    _torch.get_default_dtype,
)
from thunder.core import autocast as _autocast  # noqa: E402

_core.set_autocast_hooks(_autocast.any_enabled, _autocast.state_key, _autocast.disabled)

from thunder import extend  # noqa: E402
from thunder.core.errors import DataDependentError, ThunderValueError  # noqa: E402
from thunder.core.jit import (  # noqa: E402
    CACHE_OPTIONS,
    ThunderModule,
    cache_hits,
    cache_misses,
    cache_option,
    compile,
    compile_data,
    compile_stats,
    jit,
    last_backward_traces,
    last_compile_options,
    last_prologue_traces,
    last_traces,
)
from thunder.executors import torchex as _torchex  # noqa: E402
from thunder.extend import (  # noqa: E402
    get_all_executors,
    get_always_executors,
    get_default_executors,
)

__version__ = "0.1.0"

pytorch_executor = extend.register_executor(extend.OperatorExecutor("torch"))
python_executor = extend.register_executor(extend.OperatorExecutor("python"))
_torchex.register(pytorch_executor, _core.symbols())
extend.set_always_executors([pytorch_executor, python_executor])

from thunder.executors import fusionex as _fusionex  # noqa: E402
from thunder.executors.fusionex import fusion_source  # noqa: E402
from thunder import transforms  # noqa: E402

fusion_executor = extend.register_executor(_fusionex.ThunderFusionExecutor("fusion"))
if _fusionex.enabled_by_default():
    extend.add_default_executor(fusion_executor)

from thunder.executors import sdpaex as _sdpaex  # noqa: E402
from thunder.executors import torchcompileex as _torchcompileex  # noqa: E402

torch_compile_executor = extend.register_executor(_torchcompileex.TorchCompileExecutor("torchcompile"))
sdpa_executor = extend.register_executor(_sdpaex.sdpa_ex)
extend.add_default_executor(sdpa_executor)

__all__ = [
    "jit", "compile", "last_traces", "last_backward_traces", "last_prologue_traces", "compile_stats",
    "compile_data", "cache_hits", "cache_misses", "cache_option", "last_compile_options",
    "get_default_executors", "get_always_executors", "get_all_executors", "ThunderModule",
    "DataDependentError", "ThunderValueError", "CACHE_OPTIONS", "pytorch_executor", "python_executor",
    "fusion_executor", "fusion_source", "torch_compile_executor", "sdpa_executor",
]
