"""Executors: the objects that claim parts of a program and run them.

An executor declares which symbols it implements; when a program is compiled, each operation goes to
the first executor in the list that can run it (see csrc/executors/executor.h). `torch` and `python`
are always available and always appended to the list a user gives.

Extending thunder (Lightning Thunder's API):

- `OperatorExecutor(name).register_operator(name, meta=| like=, fn=)` defines a new operator: a
  symbol callable in jitted code, recorded in the trace by its name and run by `fn`.
- `OperatorExecutor.register_implementation(symbol, op=| execution_transform=, checker=)` claims an
  existing symbol (`thunder.torch.mul`, ...) wherever `checker` accepts its arguments.
- `FusionExecutor` receives maximal regions of the symbols its `can_fuse` accepts, partitioned by the
  core so the program stays acyclic, and returns a callable for each.

Registration and claiming live in the C++ core (csrc/executors/custom_op.h, executor.h); this module
adapts Python callables to it.
"""

from __future__ import annotations

import inspect
import math

import torch

from thunder import _core
from thunder.core import capture, transforms

__all__ = [
    "Executor",
    "OperatorExecutor",
    "FusionExecutor",
    "Symbol",
    "RecordedCall",
    "register_executor",
    "deregister_executor",
    "get_executor",
    "get_all_executors",
    "get_default_executors",
    "get_always_executors",
    "set_default_executors",
    "add_default_executor",
    "remove_default_executor",
    "set_always_executors",
    "add_always_executor",
    "remove_always_executor",
    "resolve_executors",
]


class Executor:
    """An executor: a name and a table from symbols to implementations (held in C++)."""

    def __init__(self, name: str, version=None):
        if not isinstance(name, str) or not name:
            raise ValueError("an executor needs a non-empty string name")
        self.name = name
        self.version = version
        self._core = self._make_core(name)

    def _make_core(self, name):
        return _core.Executor(name)

    def can_execute(self, symbol) -> bool:
        return self._core.implements(_core_symbol(symbol))

    def __repr__(self):
        return f"thunder.extend.{type(self).__name__}('{self.name}')"


class Symbol:
    """An operator made by `OperatorExecutor.register_operator`. Called inside a jitted function it is
    recorded in the trace (its meta function gives the outputs' metadata); called anywhere else it
    runs its implementation."""

    def __init__(self, core_symbol, fn, executor):
        self._core = core_symbol
        self._fn = fn
        self.executor = executor
        self.name = core_symbol.name
        self.__name__ = core_symbol.name
        self.__doc__ = getattr(fn, "__doc__", None)

    @property
    def id(self) -> str:
        return self._core.qualname

    def __call__(self, *args, **kwargs):
        if torch._C._is_torch_function_mode_enabled():
            # Inside thunder.jit the capture mode records the call (torch's own modes just call back).
            return torch.overrides.handle_torch_function(
                self, _tensor_leaves((args, kwargs)), *args, **kwargs)
        return self._fn(*args, **kwargs)

    def __repr__(self):
        return f"<Symbol {self._core.qualname}>"


class OperatorExecutor(Executor):
    """An executor that runs individual operations with Python callables."""

    def register_operator(self, name: str, *, like=None, meta=None, fn=None, tags=None, module=None,
                          replaces=None, bind_postprocess=None, python_printer=None) -> Symbol:
        """Defines the operator `name` of this executor, run by `fn`. Its outputs' metadata come from
        `meta` (called while tracing with the arguments as meta tensors; it returns tensors, meta
        ones will do, on the inputs' device) or from the symbol `like`. The returned Symbol is
        called in jitted code like any torch function; `replaces=torch_fn` also records calls of
        `torch_fn` as this operator. To differentiate it, give it a gradient with
        `register_implementation(op, op, grad_transform=...)` (or
        thunder.core.transforms.register_grad).

        `meta` (and so the operator) may take `*args` and `**kwargs`: the trace then holds them as
        one tuple and one dict argument, and `fn`, `meta`, checkers and gradient functions are
        called with them spread out again, as the user called the operator (a gradient's backward
        then returns one gradient per tensor in the order the user passed them, those in *args
        and **kwargs included).

        Printing: the trace prints the call as `<executor>.<name>(...)` (a comment in the trace's
        header says that `<executor>` is not a Python module). With `module=` (a module, a
        module's name, or a class) the operator is importable as `module.<name>`: the trace prints
        `<module>.<name>(...)` and imports the module, and `fn` defaults to that attribute.
        `python_printer(bsym, lhs, args, kwargs) -> str` prints the call instead: `lhs` is the
        printed output ('' when there is none), `args` the printed positional arguments and
        `kwargs` the printed keyword arguments (name -> text); it returns Python statements
        (checked with `ast.parse`).

        `bind_postprocess(bsym)` is called each time the operator is recorded while tracing, with a
        `RecordedCall` (sym, args, kwargs as the user passed them, and output proxies); it may
        check the call (an exception stops the compilation, located at the user's line). The
        recorded operation itself cannot be changed from it."""
        what = f"register_operator('{name}')"
        if (like is None) == (meta is None):
            raise TypeError(f"{what}: give exactly one of meta= and like=")
        prefix, import_statement = "", None
        if module is not None:
            prefix, import_statement, target = _module_prefix(module, what)
            if not hasattr(target, name):
                raise ValueError(f"{what}: module= {prefix} has no attribute '{name}', so the "
                                 "printed trace could not call it")
            if fn is None:
                fn = getattr(target, name)
        if not callable(fn):
            raise TypeError(f"{what}: fn must be callable")
        for arg, label in ((bind_postprocess, "bind_postprocess"), (python_printer, "python_printer")):
            if arg is not None and not callable(arg):
                raise TypeError(f"{what}: {label} must be callable")
        adapter = None
        if like is not None:
            core = _core.register_operator(self._core, name, "", None, _core_symbol(like), fn, prefix)
        else:
            if not callable(meta):
                raise TypeError(f"{what}: meta must be callable")
            signature, adapter = _signature_text(meta, what, allow_varargs=True)
            run = fn if adapter is None else adapter.spread(fn)
            core = _core.register_operator(self._core, name, signature, None, None, run, prefix)
            _set_python_meta(core, meta if adapter is None else adapter.spread(meta))
        if import_statement is not None:
            _core.register_module_import(prefix, import_statement)
        if python_printer is not None:
            _core.set_python_printer(core, _checked_printer(python_printer, core.qualname))
        op = Symbol(core, fn, self)
        op._adapter = adapter
        table = capture.dispatch_table()
        table.by_fn[op] = core
        if replaces is not None:
            table.by_fn[replaces] = core
        if adapter is not None or bind_postprocess is not None:
            table.record_hooks[core.qualname] = _record_hook(op, adapter, bind_postprocess)
        return op

    def register_implementation(self, symbol, op=None, *, checker=None, execution_transform=None,
                                grad_transform=None):
        """Claims `symbol` (a torch-level symbol such as `thunder.torch.mul`, a primitive, or another
        executor's operator) wherever `checker(*args, **kwargs)` accepts its arguments (tensor
        proxies with shape, dtype and device). It then runs as `op` (an operator of this executor,
        taking the symbol's arguments) or as `execution_transform(*args, **kwargs)`, a Python
        function that runs it. The trace prints the implementation's name. `grad_transform`, a pair
        (augmented_forward, backward) as thunder.core.transforms.register_grad takes them, becomes
        the symbol's gradient (for every executor)."""
        sym = _core_symbol(symbol)
        if (op is None) == (execution_transform is None):
            raise TypeError(
                f"register_implementation({sym.qualname}): give exactly one of op= and "
                "execution_transform=")
        adapter = getattr(symbol, "_adapter", None) if isinstance(symbol, Symbol) else None
        if op is not None:
            if not isinstance(op, Symbol):
                raise TypeError("op= must be an operator made by register_operator")
            fn, name = op._fn, op.name
            module = op._core.module or op.executor.name
            if op._adapter is not None:
                fn = op._adapter.spread(fn)
        else:
            if not callable(execution_transform):
                raise TypeError("execution_transform= must be callable")
            fn, module, name = execution_transform, self.name, sym.name
            if adapter is not None:
                fn = adapter.spread(fn)
        wrapped_checker = None
        if checker is not None:
            if not callable(checker):
                raise TypeError("checker= must be callable")
            wrapped_checker = _bound_caller(
                checker if adapter is None else adapter.spread(checker), sym, _as_checker_arg)
        _core.register_implementation(self._core, sym, module, name, fn, wrapped_checker)
        if grad_transform is not None:
            _register_grad_transform(symbol if isinstance(symbol, Symbol) else sym, grad_transform)


class FusionExecutor(Executor):
    """The base of fusers. While a program is claimed, a fusion executor takes each operation whose
    whole decomposition consists of primitives `can_fuse` accepts; the core then partitions what it
    took into maximal regions (acyclic: no path leaves a region and comes back) and calls
    `fuse(region, index)` on each. `fuse` returns `(name, callable)`, the callable taking the
    region's inputs and returning its outputs (one tensor, or a tuple when there are several), or
    None to leave the region to the other executors.

    `region.bound_symbols` are the region's operations as the other executors would run them,
    `region.inputs` and `region.outputs` its tensor proxies, and `region.source(name)` a Python
    function of those operations."""

    def __init__(self, name: str, version=None):
        self._supported = {}
        super().__init__(name, version)

    def _make_core(self, name):
        return _core.make_python_fusion_executor(name, self._can_fuse_hook, self._fuse_hook)

    def register_supported(self, symbol, checker=None) -> None:
        """Declares that `can_fuse` accepts `symbol` (a primitive) where `checker` accepts its
        arguments (default: always)."""
        sym = _core_symbol(symbol)
        self._supported[sym.qualname] = None if checker is None else _bound_caller(
            checker, sym, _as_checker_arg)

    def can_fuse(self, bsym) -> bool:
        """True when this executor can take the primitive `bsym` (a BoundSymbol: sym, args,
        output). Default: the symbols given to register_supported."""
        key = bsym.sym.qualname
        if key not in self._supported:
            return False
        check = self._supported[key]
        return True if check is None else bool(check(bsym.args))

    def fuse(self, region, index: int):
        raise NotImplementedError(f"{type(self).__name__} must implement fuse(region, index)")

    def _can_fuse_hook(self, bsym):
        return bool(self.can_fuse(bsym))

    def _fuse_hook(self, region, index):
        return self.fuse(region, index)


_registry: dict[str, Executor] = {}
_default: list[Executor] = []
_always: list[Executor] = []


def register_executor(ex: Executor) -> Executor:
    if not isinstance(ex, Executor):
        raise TypeError(f"expected a thunder.extend.Executor, got {type(ex).__name__}")
    if ex.name in _registry and _registry[ex.name] is not ex:
        raise ValueError(f"an executor named '{ex.name}' is already registered")
    _registry[ex.name] = ex
    return ex


def deregister_executor(ex) -> None:
    name = ex if isinstance(ex, str) else ex.name
    _registry.pop(name, None)
    _default[:] = [e for e in _default if e.name != name]
    _always[:] = [e for e in _always if e.name != name]


def get_executor(name: str) -> Executor:
    ex = _registry.get(name)
    if ex is None:
        available = ", ".join(sorted(_registry)) or "none"
        raise ValueError(f"unknown executor '{name}'; available executors: {available}")
    return ex


def get_all_executors() -> tuple[Executor, ...]:
    return tuple(_registry.values())


def get_default_executors() -> tuple[Executor, ...]:
    return tuple(_default)


def get_always_executors() -> tuple[Executor, ...]:
    return tuple(_always)


def set_default_executors(executors) -> None:
    _default[:] = [_resolve_one(e) for e in executors]


def add_default_executor(ex) -> None:
    ex = _resolve_one(ex)
    _default[:] = [ex] + [e for e in _default if e is not ex]


def remove_default_executor(ex) -> None:
    name = ex if isinstance(ex, str) else ex.name
    _default[:] = [e for e in _default if e.name != name]


def set_always_executors(executors) -> None:
    _always[:] = [_resolve_one(e) for e in executors]


def add_always_executor(ex) -> None:
    ex = _resolve_one(ex)
    if ex not in _always:
        _always.append(ex)


def remove_always_executor(ex) -> None:
    name = ex if isinstance(ex, str) else ex.name
    _always[:] = [e for e in _always if e.name != name]


def _resolve_one(ex) -> Executor:
    if isinstance(ex, Executor):
        return ex
    if isinstance(ex, str):
        return get_executor(ex)
    raise TypeError(f"expected an executor or an executor name, got {type(ex).__name__}")


def _tensor_leaves(x, out=None):
    out = [] if out is None else out
    if isinstance(x, torch.Tensor):
        out.append(x)
    elif isinstance(x, (list, tuple)):
        for i in x:
            _tensor_leaves(i, out)
    elif isinstance(x, dict):
        for i in x.values():
            _tensor_leaves(i, out)
    return out


def _core_symbol(symbol):
    """The core symbol of `symbol`: a core symbol, an operator, or a name ("mul", "ltorch.mul",
    "prims.add")."""
    if isinstance(symbol, Symbol):
        return symbol._core
    if isinstance(symbol, _core.Symbol):
        return symbol
    if isinstance(symbol, str):
        module, _, name = symbol.rpartition(".")
        found = _core.find_symbol(module or "ltorch", name)
        if found is None:
            raise ValueError(f"unknown symbol '{symbol}'")
        return found
    raise TypeError(f"expected a symbol, got {type(symbol).__name__}")


def _default_text(value, what, name):
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    if isinstance(value, str) and "'" not in value and "," not in value:
        return f"'{value}'"
    if value == ():
        return "()"
    raise TypeError(f"{what}: the default of parameter '{name}' ({value!r}) is not supported; "
                    "defaults may be None, booleans, numbers, strings or ()")


def _signature_text(fn, what, allow_varargs=False):
    """The core signature text of a Python function ("a, b, *, alpha=1"). With allow_varargs, a
    `*args` parameter becomes one tuple parameter and `**kwargs` one keyword-only dict parameter;
    returns (text, adapter), the adapter None when there are neither."""
    parts, kw = [], False
    signature = inspect.signature(fn)
    packed = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            if not allow_varargs:
                raise TypeError(f"{what}: **{p.name} is not supported; name the keyword parameters")
            packed = True
            if not kw:
                parts.append("*")
                kw = True
            parts.append(f"{p.name}=None")
            continue
        if p.kind is p.VAR_POSITIONAL:
            if not allow_varargs:
                raise TypeError(f"{what}: *{p.name} is not supported; take a sequence instead")
            packed = True
            parts.append(f"{p.name}=()")
            continue
        if p.kind is p.KEYWORD_ONLY and not kw:
            parts.append("*")
            kw = True
        text = p.name
        if p.default is not p.empty:
            text += "=" + _default_text(p.default, what, p.name)
        parts.append(text)
    text = ", ".join(parts)
    if not allow_varargs:
        return text
    return text, (_VarArgs(signature) if packed else None)


class _VarArgs:
    """Packs and spreads the calls of an operator whose meta takes *args and/or **kwargs: the trace
    holds the extra positionals as one tuple and the extra keywords as one dict (None when empty),
    the functions the user wrote are called with them spread out."""

    def __init__(self, signature):
        self.signature = signature
        self.params = list(signature.parameters.values())

    def pack(self, args, kwargs):
        """The user's call as the core records it: (args, kwargs)."""
        bound = self.signature.bind(*args, **kwargs)
        pos, kw = [], {}
        for p in self.params:
            if p.name not in bound.arguments:
                continue
            v = bound.arguments[p.name]
            if p.kind is p.VAR_POSITIONAL:
                pos.append(tuple(v))
            elif p.kind is p.VAR_KEYWORD:
                if v:
                    kw[p.name] = dict(v)
            elif p.kind is p.KEYWORD_ONLY:
                kw[p.name] = v
            else:
                pos.append(v)
        return pos, kw

    def spread(self, fn):
        """`fn`, written for the user's call, called as the core calls implementations (named
        positionals, the packed tuple, keyword-only ones and the packed dict by name)."""
        params = self.params

        def call(*args, **kwargs):
            user_args, user_kwargs = [], {}
            values = iter(args)
            for p in params:
                if p.kind is p.KEYWORD_ONLY:
                    if p.name in kwargs:
                        user_kwargs[p.name] = kwargs[p.name]
                elif p.kind is p.VAR_KEYWORD:
                    user_kwargs.update(kwargs.get(p.name) or {})
                else:
                    v = next(values, inspect.Parameter.empty)
                    if v is inspect.Parameter.empty:
                        v = p.default if p.kind is not p.VAR_POSITIONAL else ()
                        if v is inspect.Parameter.empty:
                            raise TypeError(f"missing argument '{p.name}'")
                    if p.kind is p.VAR_POSITIONAL:
                        user_args.extend(v)
                    else:
                        user_args.append(v)
            return fn(*user_args, **user_kwargs)

        call.__name__ = getattr(fn, "__name__", "call")
        return call


class RecordedCall:
    """What `bind_postprocess` receives: the operator, the arguments as the user passed them (tensor
    proxies for tensors) and the output proxies."""

    __slots__ = ("args", "kwargs", "output", "sym")

    def __init__(self, sym, args, kwargs, output):
        self.sym, self.args, self.kwargs, self.output = sym, args, kwargs, output

    def __repr__(self):
        return f"<RecordedCall {self.sym.id}>"


def _record_hook(op, adapter, bind_postprocess):
    def hook(record, args, kwargs):
        if adapter is not None:
            out = record(*adapter.pack(args, kwargs))
        else:
            out = record(args, kwargs)
        if bind_postprocess is not None:
            bind_postprocess(RecordedCall(op, tuple(args), dict(kwargs), out))
        return out

    return hook


def _module_prefix(module, what):
    """(printed prefix, import statement, object holding the operator) for register_operator's
    module=: a module, a module's name, or a class defined at a module's top level."""
    import importlib
    import types

    if isinstance(module, str):
        try:
            module = importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"{what}: module= '{module}' cannot be imported ({e})") from None
    if isinstance(module, types.ModuleType):
        name = module.__name__
        return name, f"import {name}", module
    if isinstance(module, type):
        mod = importlib.import_module(module.__module__)
        if "." in module.__qualname__ or getattr(mod, module.__name__, None) is not module:
            raise ValueError(f"{what}: module= class {module.__qualname__} is not importable from "
                             f"{module.__module__}")
        return f"{module.__module__}.{module.__qualname__}", f"import {module.__module__}", module
    raise TypeError(f"{what}: module= must be a module, a module name or a class, got "
                    f"{type(module).__name__}")


def _checked_printer(printer, qualname):
    """`printer`, its result checked to be Python statements (the printed trace stays valid)."""
    import ast

    def run(bsym, lhs, args, kwargs):
        text = printer(bsym, lhs, args, kwargs)
        if not isinstance(text, str):
            raise TypeError(f"must return a string, got {type(text).__name__}")
        try:
            ast.parse(text)
        except SyntaxError as e:
            raise ValueError(f"printed {text!r}, which is not valid Python ({e.msg})") from None
        return text

    return run


def _convert(x, leaf):
    if isinstance(x, _core.ProxyHandle):
        return leaf(x)
    if isinstance(x, list):
        return [_convert(i, leaf) for i in x]
    if isinstance(x, tuple):
        return tuple(_convert(i, leaf) for i in x)
    if isinstance(x, dict):
        return {k: _convert(v, leaf) for k, v in x.items()}
    return x


def _as_meta_tensor(p):
    return torch.empty(p.shape, dtype=p.dtype, device="meta")


def _as_checker_arg(p):
    return capture.TensorProxy(p, p.shape, p.dtype, torch.device(p.device), p.requires_grad)


def _bound_caller(fn, sym, leaf):
    """Calls `fn` from a bound symbol's argument list (one value per parameter of `sym`) as the
    runtime calls implementations: positional parameters positionally, keyword-only ones by name,
    arguments equal to their defaults left out (trailing positional ones, and keyword-only ones).
    Tensor proxies are converted with `leaf`."""
    params = _core.symbol_params(sym)

    def is_default(param, v):
        _, _, _, has_default, default = param
        return has_default and type(v) is type(default) and v == default

    def call(values):
        args, kwargs = [], {}
        last = 0
        for i, (p, v) in enumerate(zip(params, values)):
            if not p[1] and not is_default(p, v):
                last = i + 1
        for i, (p, v) in enumerate(zip(params, values)):
            name, kw_only, varargs = p[0], p[1], p[2]
            if kw_only and not varargs:
                if not is_default(p, v):
                    kwargs[name] = _convert(v, leaf)
            elif i < last or varargs:  # `*shape` arrives as one tuple, as the runtime passes it
                args.append(_convert(v, leaf))
        return fn(*args, **kwargs)

    return call


def _set_python_meta(core, meta):
    _core.set_python_meta(core, _bound_caller(meta, core, _as_meta_tensor))


def _register_grad_transform(sym, grad_transform):
    """Registers `grad_transform` as the gradient of `sym` (thunder.core.transforms.register_grad):
    a pair (augmented_forward, backward), or a dict of register_grad's keyword arguments."""
    if isinstance(sym, Symbol):
        sym_or_op, sym = sym, sym._core
    else:
        sym_or_op = sym
    if isinstance(grad_transform, dict):
        transforms.register_grad(sym_or_op, **grad_transform)
    elif isinstance(grad_transform, (tuple, list)) and len(grad_transform) == 2:
        transforms.register_grad(sym_or_op, augmented_forward=grad_transform[0],
                                 backward=grad_transform[1])
    else:
        raise TypeError(
            f"register_implementation({sym.qualname}): grad_transform must be a pair "
            "(augmented_forward, backward) or a dict of thunder.core.transforms.register_grad's "
            "arguments; see thunder.core.transforms")


def resolve_executors(executors) -> list[Executor]:
    """The executors to compile with: the given ones (default: the default executors), in order, then
    the always-executors not already listed."""
    if executors is None:
        chosen = list(_default)
    else:
        if isinstance(executors, (str, Executor)):
            executors = [executors]
        chosen = [_resolve_one(e) for e in executors]
    for ex in _always:
        if ex not in chosen:
            chosen.append(ex)
    return chosen
