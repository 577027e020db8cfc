"""thunder.jit and thunder.compile: the user-facing entry points, and trace inspection.

A jitted callable is a C++ CompiledFunction (runtime/compiled_function.h): each call checks the cached
entries' guards in C++ and runs the matching program. On a miss it calls `_Compiler.__call__` below,
which captures the function with proxies, runs the C++ pipeline and returns a new cache entry.
"""

from __future__ import annotations

import collections
import enum
import functools
import inspect
import sys
import time
import warnings
import weakref

import torch

from thunder import _core
from thunder.core import autocast as _autocast
from thunder.core import autograd, capture, cudagraphs
from thunder.extend import resolve_executors

__all__ = [
    "jit", "compile", "ThunderModule", "CACHE_OPTIONS", "last_traces", "last_backward_traces",
    "last_prologue_traces", "compile_stats", "compile_data", "cache_hits", "cache_misses",
    "cache_option", "last_compile_options",
]


class CACHE_OPTIONS(enum.Enum):
    CONSTANT_VALUES = "constant values"
    SAME_INPUT = "same input"
    NO_CACHING = "no caching"
    SYMBOLIC_VALUES = "symbolic values"


_CACHE_MODE = {
    CACHE_OPTIONS.CONSTANT_VALUES: 0,
    CACHE_OPTIONS.SAME_INPUT: 1,
    CACHE_OPTIONS.NO_CACHING: 2,
}


def _cache_option(cache) -> CACHE_OPTIONS:
    if cache is None:
        return CACHE_OPTIONS.CONSTANT_VALUES
    if isinstance(cache, CACHE_OPTIONS):
        opt = cache
    else:
        try:
            opt = CACHE_OPTIONS(cache)
        except ValueError:
            valid = ", ".join(repr(o.value) for o in CACHE_OPTIONS)
            raise ValueError(f"unknown cache option {cache!r}; valid options: {valid}") from None
    if opt is CACHE_OPTIONS.SYMBOLIC_VALUES:
        raise NotImplementedError(
            "cache='symbolic values' is not supported yet: shapes and numbers are specialised "
            "(use 'constant values')"
        )
    return opt


class PrologueTrace:
    """The checks a call must pass to reuse a compiled program (evaluated in C++), as Python source."""

    def __init__(self, source: str):
        self._source = source

    def python(self) -> str:
        return self._source

    def __str__(self):
        return self._source

    __repr__ = __str__


class CompileStats:
    """Timings and counters of a jitted callable (Lightning Thunder's CompileStats names)."""

    def __init__(self, cfn):
        self._cfn = cfn

    @property
    def calls(self):
        return self._cfn.cache_hits + self._cfn.cache_misses

    @property
    def cache_hits(self):
        return self._cfn.cache_hits

    @property
    def cache_misses(self):
        return self._cfn.cache_misses

    def _info(self):
        e = self._cfn.last_entry
        if e is None:
            raise RuntimeError("the function has not been called yet")
        return e.info

    @property
    def last_traces(self):
        return self._info().traces

    @property
    def last_prologue_traces(self):
        return [self._info().prologue]

    @property
    def last_backward_traces(self):
        return self._info().backward_traces

    @property
    def last_trace_tracing_start(self):
        return self._info().tracing_start_ns

    @property
    def last_trace_tracing_stop(self):
        return self._info().tracing_stop_ns

    @property
    def last_trace_host_start(self):
        return self._info().compile_start_ns

    @property
    def last_trace_host_stop(self):
        return self._info().compile_stop_ns

    @property
    def last_stage_times(self) -> dict:
        """Seconds spent in each compilation stage of the last compiled entry."""
        return dict(self._info().stage_times)


class _EntryInfo:
    __slots__ = ("traces", "backward_traces", "prologue", "stage_times", "opaque_ops", "cuda_graphs",
                 "tracing_start_ns", "tracing_stop_ns", "compile_start_ns", "compile_stop_ns")


def _leaf_kind_ok(x):
    return x is None or isinstance(x, (torch.Tensor, bool, int, float, str, torch.dtype, torch.device))


def _refuse_aliased_updates(updated, inputs):
    """Raises when an input the function updates in place overlaps the memory of another input (the
    same tensor passed twice, or overlapping views of one): the program treats inputs as separate
    memory, so the other would not see the update. Views of one storage whose bytes do not overlap
    (the two halves of a buffer) are separate. The check each call makes on its updated arguments
    (CacheEntry::inputs_alias), here over every input."""
    pair = _core.overlapping_update([t for t, _ in inputs], updated) if updated else None
    if pair is not None:
        u, other = pair
        raise NotImplementedError(
            f"thunder.jit: the input '{inputs[u][1]}' is updated in place and shares memory "
            f"with the input '{inputs[other][1]}' (the same tensor, or views of one); thunder does not "
            f"support updating aliased inputs yet. Pass separate tensors (a clone)")


def _result_types(result, path="the result"):
    """A function that gives the program's output (plain tuples, lists and dicts) the types of the
    traced function's result: named tuples, torch.return_types (`torch.max(x, 1).values`),
    torch.Size, OrderedDict and other subclasses; None when there are none. Raises TypeError for a
    result that holds tensors in an object thunder cannot return (a dataclass, say)."""
    if isinstance(result, torch.Size):
        return torch.Size
    if isinstance(result, (tuple, list)):
        subs = [_result_types(v, f"{path}[{i}]") for i, v in enumerate(result)]
        kind = type(result)
        if kind in (tuple, list) and all(f is None for f in subs):
            return None
        if hasattr(kind, "_fields"):
            make = lambda items: kind(*items)  # a named tuple
        elif hasattr(kind, "n_sequence_fields"):
            make = kind  # torch.return_types (a structseq) takes one sequence
        else:
            make = kind

        def restore(out):
            return make([f(v) if f is not None else v for f, v in zip(subs, out)])

        return restore
    if isinstance(result, dict):
        subs = {k: _result_types(v, f"{path}[{k!r}]") for k, v in result.items()}
        kind = type(result)
        if kind is dict and all(f is None for f in subs.values()):
            return None

        def restore(out):
            new = {k: (subs[k](v) if subs.get(k) is not None else v) for k, v in out.items()}
            if kind is dict:
                return new
            if kind is collections.defaultdict:
                return collections.defaultdict(result.default_factory, new)
            return kind(new)

        return restore
    if not _leaf_kind_ok(result) and any(isinstance(v, torch.Tensor) for v in getattr(result, "__dict__", {}).values()):
        raise TypeError(
            f"{path} is an object of type {type(result).__qualname__} holding tensors, which thunder "
            f"cannot return; return its tensors in a tuple, list or dict")
    return None


def _describe(path):
    return path[0] + "".join(f"[{p!r}]" for p in path[1:])


class _Compiler:
    """Captures and compiles one cache entry (called by the C++ CompiledFunction on a miss)."""

    def __init__(self, fn, module, executors, cache, options):
        self.fn = fn
        self.module = module
        self.executors = executors
        self.cache = cache
        self.options = options
        self.decompose = bool(options.get("decompose_to_prims", False))
        self.fuse_random = bool(options.get("fuse_random", False))
        self.cuda_graphs = bool(options.get("cuda_graphs", False))
        self.cfn = None  # set by jit: a weak reference (the CompiledFunction owns this compiler)
        target = module.forward if module is not None else fn
        try:
            self.param_names = list(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            self.param_names = []
        self.params = []  # (qualified name, dict, key) of module parameters and buffers
        self.module_dicts = []  # the __dict__ of every submodule

    def inline(self, args, kwargs):
        """A call made while another function is traced: the wrapped function or module, traced
        as part of that function."""
        return self.fn(*args, **kwargs)

    def traced_functions(self):
        """The function traced, or the forward of every submodule."""
        if self.module is None:
            return [self.fn]
        return [type(m).forward for _, m in self.module.named_modules()]

    def arg_name(self, i):
        if i < len(self.param_names):
            p = self.param_names[i]
            if p not in ("args", "self"):
                return p
        return f"arg{i}"

    def proxify(self, x, path, name, session, counter):
        if isinstance(x, torch.Tensor):
            proxy = session.new_input(x, name, counter[0])
            counter[1].append((x, name))
            proxy._thunder_input = True  # its .grad is the caller's, which the program cannot read
            proxy._thunder_leaf = x.is_leaf
            counter[0] += 1
            return proxy
        if isinstance(x, (tuple, list)):
            items = [self.proxify(v, path + [i], f"{name}_{i}", session, counter) for i, v in enumerate(x)]
            if isinstance(x, list):
                return items
            if hasattr(x, "_fields"):
                return type(x)(*items)
            return type(x)(items) if type(x) is not tuple else tuple(items)
        if isinstance(x, dict):
            return {k: self.proxify(v, path + [k], f"{name}_{k}" if isinstance(k, str) and k.isidentifier() else f"{name}_{i}", session, counter)
                    for i, (k, v) in enumerate(x.items())}
        if not _leaf_kind_ok(x):
            raise TypeError(
                f"thunder.jit: {_describe(path)} has type {type(x).__qualname__}, which thunder cannot "
                f"take as an input; pass tensors, numbers, strings, None, dtypes, devices, or "
                f"tuples, lists and dicts of them"
            )
        return x

    def __call__(self, args, kwargs):
        start = time.perf_counter_ns()
        session = capture.new_session()
        counter = [0, []]  # the next input's index; the inputs' tensors and names, in order
        pargs = [self.proxify(a, [f"argument {i} ('{self.arg_name(i)}')"], self.arg_name(i), session, counter)
                 for i, a in enumerate(args)]
        pkwargs = {k: self.proxify(v, [f"keyword argument '{k}'"], k, session, counter) for k, v in kwargs.items()}
        arg_tensors = len(counter[1])
        cfn = self.cfn()
        params = cfn.current_params()
        flags = cfn.current_flags()
        globals_read = _global_scalars(self.traced_functions())
        attributes = _module_attributes(self.module_dicts) + globals_read + _module_structure(self.module)
        swapped = []
        try:
            for (qualname, d, key), tensor in zip(self.params, params):
                if tensor is None:  # set to None after thunder.jit (lin.bias = None): none read
                    continue
                proxy = session.new_input(tensor, "t_" + qualname.replace(".", "_"), counter[0])
                counter[1].append((tensor, qualname))
                proxy._thunder_input = True
                if isinstance(tensor, torch.nn.Parameter):
                    proxy._is_param = True  # isinstance(p, nn.Parameter) holds, as in eager
                counter[0] += 1
                swapped.append((d, key, tensor))
                d[key] = proxy
            with capture.CaptureMode(session) as mode, autograd.checkpoint_regions(mode):
                target = self.module if self.module is not None else self.fn
                result = target(*pargs, **pkwargs)
        finally:
            for d, key, tensor in swapped:
                d[key] = tensor
        updated = session.updated_inputs()
        _refuse_aliased_updates(updated, counter[1])
        assigned = _attributes_set_to_proxies(self.module_dicts)
        written = {(id(d), k) for d, k, _ in assigned}
        attributes = _without_written_attributes(attributes, written, session)
        _warn_changed_while_tracing(attributes, written)
        try:
            restore = _result_types(result)
            if assigned:
                result, restore = _replaying_attributes(result, restore, assigned)
            trace = session.finish(result)
        except (TypeError, ValueError, NotImplementedError) as e:
            raise type(e)(f"thunder.jit: the function's result cannot be returned: {e}") from None
        traced = time.perf_counter_ns()
        built = None
        if torch.is_grad_enabled() and _core.needs_grad(trace):
            # Training: thunder's forward and backward programs behind a torch.autograd.Function.
            built = autograd.build_training_entry(
                trace, [e._core for e in self.executors], self.decompose,
                bool(self.options.get("rematerialize", True)), self.fuse_random, self.cuda_graphs)
        graphs = None
        if built is not None:
            program, traces, backward_traces, times, graphs = built
        else:
            cores = [e._core for e in self.executors]
            if mode.enabled_grad:
                # A torch.enable_grad() region in a program run without thunder's autograd: executors
                # whose kernels record no autograd graph (the fuser) leave tensors needing grad alone.
                cores = [getattr(e, "grad_recording_core", e._core) for e in self.executors]
            traces, times = _core.run_pipeline(trace, cores, self.decompose, self.fuse_random)
            program = _core.Program.build(traces[-1])
            backward_traces = []
            graph_plan = cudagraphs.plan(traces[-1], "program") if self.cuda_graphs else None
            if graph_plan is not None:
                graphs = cudagraphs.InferenceGraph(program, graph_plan)
                program = _core.runner_program(traces[-1], graphs)
        if restore is not None:
            inner = program
            program = _core.runner_program(trace, lambda *ins: restore(inner(*ins)))
        guard = _core.Guard.build(tuple(args), dict(kwargs), params, flags, torch.is_grad_enabled(),
                                  _core.autocast_state(), mode.layout_read)
        info = _EntryInfo()
        info.traces = traces
        info.backward_traces = backward_traces
        info.prologue = PrologueTrace(_prologue_source(trace, args, kwargs, self.params, params,
                                                       self.module_dicts, globals_read, attributes))
        info.stage_times = [("capture", (traced - start) / 1e9)] + list(times)
        info.opaque_ops = session.opaque_names()
        info.cuda_graphs = graphs
        info.tracing_start_ns, info.tracing_stop_ns = start, traced
        info.compile_start_ns, info.compile_stop_ns = start, time.perf_counter_ns()
        entry = _core.CacheEntry(guard, program, session, info, attributes)
        entry.updated_inputs = updated
        entry.arg_tensors = arg_tensors
        return entry


_SCALARS = (bool, int, float, str)
_NOT_GUARDED = object()
# nn.Module's own private attributes (hook dicts, flags): its structure guards cover what matters.
_MODULE_OWN = frozenset(torch.nn.Module().__dict__)


def _guard_value(v, depth=0):
    """The value a guard compares an attribute, global or closure variable with, when the program
    uses it as a constant: numbers, strings, None, dtypes, devices, and short tuples and lists of
    them (a list is copied: a change made to it in place recompiles); _NOT_GUARDED otherwise."""
    if v is None or type(v) in _SCALARS or isinstance(v, (torch.dtype, torch.device)):
        return v
    if type(v) in (tuple, list) and depth < 2 and len(v) <= 64:
        items = [_guard_value(x, depth + 1) for x in v]
        if any(x is _NOT_GUARDED for x in items):
            return _NOT_GUARDED
        return tuple(items) if type(v) is tuple else items
    return _NOT_GUARDED


def _guarded_attribute(name, v):
    """The guard value of a module attribute (name, v), or _NOT_GUARDED (the module's own private
    attributes, its training flag, and values _guard_value leaves alone)."""
    if name == "training" or name in _MODULE_OWN or (name.startswith("__") and name.endswith("__")):
        return _NOT_GUARDED
    return _guard_value(v)


def _global_scalars(fns):
    """(globals dict, name, value) of every global number, string or None the code of `fns` reads,
    and of the functions it calls by a global name, two calls deep (torch's and thunder's own code
    left out), and (cell, name, value) of those it reads from enclosing functions: a program uses
    their values as constants, so they are guarded like module attributes and a new value
    recompiles instead of reusing a stale one. Tensors read so are (dict or cell, name, tensor,
    True): the program holds that tensor, so another one bound to the name recompiles."""
    out, seen = [], set()

    def guard(where, name, v):
        """Appends the guard of a value the program holds as a constant; whether v is one."""
        snapshot = _guard_value(v)
        if snapshot is not _NOT_GUARDED:
            out.append((where, name, snapshot))
        elif isinstance(v, torch.Tensor):  # the same tensor, not an equal one
            out.append((where, name, v, True))
        else:
            return False
        return True

    def visit(fn, depth):
        fn = getattr(fn, "__func__", fn)
        code, g = getattr(fn, "__code__", None), getattr(fn, "__globals__", None)
        module = getattr(fn, "__module__", None) or ""
        if code is None or g is None or id(code) in seen or module.split(".")[0] in ("torch", "thunder"):
            return
        seen.add(id(code))
        for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
            try:
                guard(cell, name, cell.cell_contents)
            except ValueError:  # not yet assigned
                continue
        codes = [code]
        while codes:
            c = codes.pop()
            codes.extend(k for k in c.co_consts if inspect.iscode(k))
            for name in c.co_names:
                if name not in g or (id(g), name) in seen:
                    continue
                v = g[name]
                if guard(g, name, v):
                    seen.add((id(g), name))
                elif depth < 2 and inspect.isfunction(v):
                    visit(v, depth + 1)

    for fn in fns:
        visit(fn, 0)
    return out


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_GLOBAL_HOOK_DICTS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                      "_global_backward_pre_hooks")


def _module_structure(module):
    """Guards on a module's structure, which the program was traced from: each submodule's children
    by identity, and the sizes of its dicts of children, parameters, buffers and hooks, and of
    torch's global hook dicts. A submodule replaced, or a submodule, parameter, buffer or hook added
    or removed after the first call recompiles (eager would run it)."""
    out = []
    if module is None:
        return out
    for _, m in module.named_modules(remove_duplicate=True):
        d = m.__dict__
        children = d.get("_modules")
        if isinstance(children, dict):
            out.append((children, len(children)))
            out.extend((children, k, v) for k, v in children.items() if v is not None)
        for name in ("_parameters", "_buffers", *_HOOK_DICTS):
            x = d.get(name)
            if isinstance(x, dict):
                out.append((x, len(x)))
    mod = sys.modules.get("torch.nn.modules.module")
    for name in _GLOBAL_HOOK_DICTS:
        x = getattr(mod, name, None)
        if isinstance(x, dict):
            out.append((x, len(x)))
    return out


def _module_attributes(module_dicts):
    """(dict, name, value) of every plain attribute of the modules (numbers, strings, None, dtypes,
    devices, short tuples and lists of them; private ones included, nn.Module's own left out), and
    (dict, name, tensor, True) of every plain tensor attribute: a program that read it holds that
    tensor, so another one assigned to the name (`m.scale = torch.tensor(3.0)`) recompiles."""
    out = []
    for _, d in module_dicts:
        for k, v in d.items():
            snapshot = _guarded_attribute(k, v)
            if snapshot is not _NOT_GUARDED:
                out.append((d, k, snapshot))
            elif isinstance(v, torch.Tensor) and not isinstance(v, capture.TensorProxy) and k not in _MODULE_OWN:
                out.append((d, k, v, True))
    return out


def _attributes_set_to_proxies(module_dicts):
    """(dict, name, value) of each module attribute the traced code set to a traced tensor, or to a
    tuple, list or dict holding some (`self.last_attention = weights`)."""
    out = []
    for _, d in module_dicts:
        for k, v in d.items():
            if k not in _MODULE_OWN and any(True for _ in capture._walk_proxies(v)):
                out.append((d, k, v))
    return out


def _without_written_attributes(attributes, written, session):
    """The attribute guards, less those of tensor attributes the traced code set without reading
    them (the program sets them again on each call, so guarding the old tensor would recompile on
    every call). An attribute it both read and set (state carried from call to call) keeps its
    guard, so each call recompiles: a warning says so. `written`: (id(dict), name) of the
    attributes set to traced tensors."""
    out = []
    for a in attributes:
        if len(a) == 4 and (id(a[0]), a[1]) in written and isinstance(a[2], torch.Tensor):
            k = a[1]
            if not session.holds_constant(a[2]):
                continue
            warnings.warn(
                f"thunder.jit: the module attribute {k!r} is read and set by the traced code (state "
                f"carried between calls): each call compiles again, as the program holds the tensor "
                f"it read; pass the state as an argument and return the new one instead",
                stacklevel=4)
        out.append(a)
    return out


def _warn_changed_while_tracing(attributes, written):
    """A warning for each guarded value (a module attribute, global or enclosing variable compared by
    value) the traced code itself changed (`self.calls += 1`): the program's guard holds the value
    before the call, so no later call matches it and each call compiles again. Attributes set to
    traced tensors (`written`, replayed on each call) are left out: they recompile once, from None
    say."""
    for a in attributes:
        if len(a) != 3 or (id(a[0]), a[1]) in written:
            continue
        where, name, snapshot = a
        if _guard_value(snapshot) is _NOT_GUARDED:  # a structure guard (a submodule by identity)
            continue
        if isinstance(where, dict):
            if name not in where:
                continue
            now = where[name]
        else:
            try:
                now = where.cell_contents
            except ValueError:
                continue
        if not _core.same_guard_value(_guard_value(now), snapshot):  # as the cache compares them
            warnings.warn(
                f"thunder.jit: the traced code changed {name!r}, a value the program was compiled "
                f"for (a counter such as `self.{name} += 1`?): each call compiles again, and the change "
                f"is made only while compiling; keep such state outside the jitted code, or in a "
                f"tensor buffer updated in place", stacklevel=4)


def _replaying_attributes(result, restore, assigned):
    """The traced result with the attributes' traced values appended, and a restore function that
    sets each attribute to its value from the program's output on every call, then gives the user's
    result (eager sets them as the code runs; a program runs the code's tensor work only)."""
    targets = [(d, k) for d, k, _ in assigned]
    types = [_result_types(v, f"attribute {k!r}") for _, k, v in assigned]

    def replay(out):
        user, values = out
        for (d, k), f, v in zip(targets, types, values):
            d[k] = f(v) if f is not None else v
        return restore(user) if restore is not None else user

    return (result, [v for _, _, v in assigned]), replay


def _prologue_source(trace, args, kwargs, param_meta, params, module_dicts=(), globals_read=(),
                     attributes=()):
    lines = ["# Constructed by thunder (stage: prologue). These checks run in C++ on every call.",
             "def prologue(*args, **kwargs):"]

    def walk(x, expr):
        if isinstance(x, torch.Tensor):
            lines.append(
                f"  check_tensor_metadata({expr}, {tuple(x.shape)}, '{x.device}', {x.dtype}, "
                f"requires_grad={x.requires_grad}, contiguous={x.is_contiguous()})"
            )
        elif isinstance(x, (tuple, list)):
            lines.append(f"  check_len({expr}, {len(x)})")
            for i, v in enumerate(x):
                walk(v, f"{expr}[{i}]")
        elif isinstance(x, dict):
            lines.append(f"  check_keys({expr}, {list(x)!r})")
            for k, v in x.items():
                walk(v, f"{expr}[{k!r}]")
        elif isinstance(x, (bool, int, float, str)) or x is None:
            lines.append(f"  check_value({expr}, {x!r})")
        else:
            lines.append(f"  check_identity({expr})")

    walk(tuple(args), "args")
    walk(dict(kwargs), "kwargs")
    for (qualname, _, _), p in zip(param_meta, params):
        walk(p, f"module[{qualname!r}]")
    for mname, d in module_dicts:
        for k, v in d.items():
            snapshot = _guarded_attribute(k, v)
            if snapshot is not _NOT_GUARDED:
                lines.append(f"  check_value(module.get_submodule({mname!r}).{k}, {snapshot!r})")
            elif any(len(a) == 4 and a[0] is d and a[1] == k for a in attributes):
                lines.append(f"  check_identity(module.get_submodule({mname!r}).{k})  # a tensor the program may hold")
    for g, name, v, *_ in globals_read:
        if isinstance(v, torch.Tensor):
            where = f"sys.modules[{g.get('__name__')!r}].{name}" if isinstance(g, dict) else f"closure[{name!r}]"
            lines.append(f"  check_identity({where})  # a tensor the program holds")
        elif isinstance(g, dict):
            lines.append(f"  check_value(sys.modules[{g.get('__name__')!r}].{name}, {v!r})")
        else:
            lines.append(f"  check_value(closure[{name!r}], {v!r})  # a variable of an enclosing function")
    lines.append(f"  check_grad_enabled({torch.is_grad_enabled()})")
    lines.append(f"  check_default_dtype({torch.get_default_dtype()})")
    autocast = _autocast.state()
    for device_type, dtype in autocast:
        lines.append(f"  check_autocast({device_type!r}, {dtype})")
    if not autocast:
        lines.append("  check_autocast(None)")
    return "\n".join(lines) + "\n"


class ThunderFunction(_core.CompiledFunction):
    """The callable thunder.jit returns for a function."""


class _NoGradFunction(ThunderFunction):
    def __call__(self, *args, **kwargs):
        with torch.no_grad():
            return super().__call__(*args, **kwargs)


class ThunderModule(torch.nn.Module):
    """A jitted nn.Module: parameters, buffers, state_dict, train/eval and to() act on the original."""

    def __init__(self, model, cfn):
        super().__init__()
        self._model = model
        self._cfn = cfn

    def forward(self, *args, **kwargs):
        return self._cfn(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        # The wrapped module's hooks, and torch's global module hooks, are in the traced program:
        # nn.Module's call would run the global ones a second time around this wrapper. Hooks
        # registered on the wrapper itself still run around it.
        if self._forward_hooks or self._forward_pre_hooks or self._backward_hooks or self._backward_pre_hooks:
            return super().__call__(*args, **kwargs)
        return self._cfn(*args, **kwargs)

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        return self._model.named_parameters(prefix, recurse, remove_duplicate)

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._model.named_buffers(prefix, recurse, remove_duplicate)

    def state_dict(self, *args, **kwargs):
        return self._model.state_dict(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        return self._model.load_state_dict(*args, **kwargs)

    def get_submodule(self, target):
        return self._model.get_submodule(target)

    def get_parameter(self, target):
        return self._model.get_parameter(target)

    def get_buffer(self, target):
        return self._model.get_buffer(target)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["_model"], name)

    def __setattr__(self, name, value):
        # The wrapped module's attributes (parameters, submodules, settings) are set on it, where
        # the program reads them (nn.Module's own registration refused a parameter of that name).
        model = self.__dict__.get("_modules", {}).get("_model")
        if model is not None and not name.startswith("_") and name != "training" and hasattr(model, name):
            setattr(model, name, value)
        else:
            super().__setattr__(name, value)


def _check_callable(fn):
    # torch.compile'd callables exist only once torch._dynamo is imported; looking it up through
    # `torch._dynamo` would import it (about a second) on every first jit.
    dynamo = sys.modules.get("torch._dynamo")
    optimized = getattr(getattr(dynamo, "eval_frame", None), "OptimizedModule", None) if dynamo else None
    if (optimized is not None and isinstance(fn, optimized)) or hasattr(fn, "_torchdynamo_orig_callable"):
        raise TypeError(
            "thunder.jit received a torch.compile'd callable. thunder cannot trace a torch.compile "
            "wrapper; use torch.compile through thunder's 'torchcompile' executor instead: "
            "thunder.jit(fn, executors=[thunder.extend.get_executor('torchcompile'), "
            "*thunder.get_always_executors()])"
        )
    if not callable(fn):
        raise TypeError(f"thunder.jit expects a function or an nn.Module, got {type(fn).__name__}")


# The compile options thunder reads (keyword arguments of jit beyond its named parameters).
COMPILE_OPTIONS = {
    "decompose_to_prims": "run primitives instead of torch-level operations",
    "rematerialize": "training: recompute cheap values in the backward instead of saving them (default True)",
    "fuse_random": "draw dropout's masks inside the fused kernels (not eager's random numbers)",
    "cuda_graphs": "CUDA: replay each program as one CUDA graph after its first run (thunder/core/cudagraphs.py)",
}


def jit(fn, /, *, langctx=None, executors=None, sharp_edges=None, cache=None,
        disable_torch_autograd=False, transforms=None, debug_options=None, **compile_options):
    """Compiles `fn` (a function or an nn.Module). The result takes and returns torch tensors and
    returns what `fn` returns. Compile options (further keyword arguments) are those of
    COMPILE_OPTIONS; any other warns that it has no effect."""
    _check_callable(fn)
    unknown = sorted(set(compile_options) - set(COMPILE_OPTIONS))
    if unknown:
        warnings.warn(
            f"thunder.jit: compile option(s) {', '.join(map(repr, unknown))} have no effect; thunder "
            f"reads {', '.join(map(repr, sorted(COMPILE_OPTIONS)))}", UserWarning, stacklevel=2)
    if isinstance(fn, ThunderModule):
        fn = fn._model
    if langctx not in (None, "torch"):
        raise ValueError(f"unknown langctx {langctx!r}; thunder supports 'torch'")
    for t in transforms or ():
        options = getattr(t, "compile_options", None)
        if not isinstance(options, dict):
            raise NotImplementedError(
                f"thunder.jit(transforms=...): {t!r} is not a thunder transform; thunder provides "
                f"thunder.transforms.CUDAGraphTransform")
        compile_options = {**options, **compile_options}
    opt = _cache_option(cache)
    execs = resolve_executors(executors)
    module = fn if isinstance(fn, torch.nn.Module) else None
    compiler = _Compiler(fn, module, execs, opt, compile_options)
    param_sources, flag_sources = [], []
    if module is not None:
        for mname, m in module.named_modules(remove_duplicate=True):
            flag_sources.append(m.__dict__)
            compiler.module_dicts.append((mname, m.__dict__))
            for store in (m._parameters, m._buffers):
                for key, value in store.items():
                    if value is None:
                        continue
                    qual = f"{mname}.{key}" if mname else key
                    compiler.params.append((qual, store, key))
                    param_sources.append((store, key))
    cls = _NoGradFunction if disable_torch_autograd else ThunderFunction
    cfn = cls(compiler, param_sources, flag_sources, _CACHE_MODE[opt])
    compiler.cfn = weakref.ref(cfn)  # a strong one would make a cycle the GC cannot see (C++ member)
    cfn._thunder_options = dict(compile_options, executors=execs, cache=opt)
    if module is not None:
        return ThunderModule(module, cfn)
    try:
        functools.update_wrapper(cfn, fn)
    except (AttributeError, TypeError):
        pass
    return cfn


# Plugins of thunder.compile, by name: the compile options each sets.
PLUGINS = {
    "reduce-overhead": {"cuda_graphs": True},
}


def compile(fn, recipe="auto", plugins=None, **jit_options):
    """Compiles `fn` with a recipe (how to jit it) and plugins (extra transforms)."""
    if recipe not in (None, "auto", "default"):
        raise ValueError(f"unknown recipe {recipe!r}; available recipes: 'auto', 'default'")
    names = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    unknown = [n for n in names if n not in PLUGINS]
    if unknown:
        raise ValueError(f"unknown plugin(s) {unknown!r}; available plugins: {sorted(PLUGINS)!r}")
    for n in names:
        jit_options = {**PLUGINS[n], **jit_options}
    return jit(fn, **jit_options)


def _cfn(fn):
    if isinstance(fn, ThunderModule):
        return fn._cfn
    if isinstance(fn, ThunderFunction):
        return fn
    raise TypeError(f"expected a function returned by thunder.jit, got {type(fn).__name__}")


def compile_stats(fn) -> CompileStats:
    return CompileStats(_cfn(fn))


def compile_data(fn):
    return _cfn(fn)._thunder_options


def last_traces(fn) -> list:
    """The traces of the last program run: as captured, after each transform, and final."""
    return compile_stats(fn).last_traces


def last_prologue_traces(fn) -> list:
    return compile_stats(fn).last_prologue_traces


def last_backward_traces(fn) -> list:
    return compile_stats(fn).last_backward_traces


def cache_hits(fn) -> int:
    return _cfn(fn).cache_hits


def cache_misses(fn) -> int:
    return _cfn(fn).cache_misses


def cache_option(fn) -> CACHE_OPTIONS:
    return _cfn(fn)._thunder_options["cache"]


def last_compile_options(fn) -> dict:
    return dict(_cfn(fn)._thunder_options)
