"""Capture: runs the user's callable once with proxy tensors and records every torch call into the C++
trace builder (bindings/capture.h). No compiler logic lives here: this module only routes torch calls
to symbols and converts arguments."""

from __future__ import annotations

import contextlib
import inspect
import linecache
import math
import os
import sys
import threading
from typing import ClassVar

import torch
from torch.overrides import TorchFunctionMode

from thunder import _core
from thunder.core import autocast as _autocast
from thunder.core.errors import DataDependentError

_THUNDER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


class TensorProxy(torch.Tensor):
    """A stand-in for a tensor during capture. It has a tensor's metadata and no data."""

    @staticmethod
    def __new__(cls, handle, shape, dtype, device, requires_grad, strides=None):
        t = torch.Tensor._make_wrapper_subclass(
            cls, shape, strides=strides, dtype=dtype, device=device, requires_grad=requires_grad
        )
        t._thunder_ref = handle
        return t

    def __repr__(self, *, tensor_contents=None):
        return f"TensorProxy(name={self._thunder_ref.name}, shape={tuple(self.shape)}, dtype={self.dtype})"

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        if not _TRACING.modes:
            escaped = next((a for a in _walk_proxies(args) if isinstance(a, TensorProxy)), None)
            raise RuntimeError(
                f"{escaped!r} is a placeholder thunder traced with, used after tracing (in {func}): "
                f"the jitted function stored it where the program does not return it (a list, a "
                f"global, a forward hook's closure). thunder replays only module attributes set to "
                f"tensors; return the tensor from the function, or store it outside the jitted call"
            )
        raise NotImplementedError(
            f"thunder could not intercept {func} while tracing (it was called below the torch "
            f"function layer); please report this operation"
        )


def _user_frame():
    """(filename, line number, source line) of the innermost frame outside thunder and torch."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not (fn.startswith(_THUNDER_DIR) or fn.startswith(_TORCH_DIR) or fn.startswith("<frozen")):
            return fn, f.f_lineno, linecache.getline(fn, f.f_lineno).strip()
        f = f.f_back
    return None, None, None


def _where():
    fn, line, _ = _user_frame()
    return f"{fn}:{line}" if fn else ""


def _with_location(err: Exception) -> Exception:
    fn, line, code = _user_frame()
    if fn is None or getattr(err, "_thunder_located", False):
        return err
    msg = f"{err}\n  in {fn}:{line}: {code}" if code else f"{err}\n  in {fn}:{line}"
    cls = type(err)
    if cls.__module__ in ("builtins", "thunder._core") and issubclass(
            cls, (TypeError, ValueError, IndexError, NotImplementedError, RuntimeError)):
        new = cls(msg)
    else:  # an exception type whose constructor thunder does not know: leave it as raised
        return err
    new._thunder_located = True
    return new


def _data_dependent(what: str, advice: str):
    fn, line, code = _user_frame()
    where = f" at {fn}:{line}" + (f" (`{code}`)" if code else "") if fn else ""
    return DataDependentError(
        f"thunder cannot trace {what}{where}: the result depends on the values in a tensor, which are "
        f"not known while the program is traced. {advice}"
    )


_BRANCH_ADVICE = (
    "Replace Python control flow on tensor values with tensor operations (torch.where, masking), "
    "or compute the condition outside the jitted function and pass it in as a Python value."
)

# Tensor functions whose results are the tensor's metadata: evaluated on the proxy directly.
_METADATA = {
    torch.Tensor.shape.__get__, torch.Tensor.dtype.__get__, torch.Tensor.device.__get__,
    torch.Tensor.ndim.__get__, torch.Tensor.requires_grad.__get__, torch.Tensor.is_cuda.__get__,
    torch.Tensor.is_leaf.__get__, torch.Tensor.layout.__get__, torch.Tensor.grad.__get__,
    torch.Tensor.grad_fn.__get__, torch.Tensor.is_sparse.__get__, torch.Tensor.is_quantized.__get__,
    torch.Tensor.is_meta.__get__,
    torch.Tensor.size, torch.Tensor.dim, torch.Tensor.numel, torch.Tensor.nelement,
    torch.Tensor.ndimension, torch.Tensor.is_floating_point, torch.Tensor.is_complex,
    torch.Tensor.element_size, torch.Tensor.stride, torch.Tensor.is_contiguous,
    torch.Tensor.get_device, torch.Tensor.__len__, torch.Tensor.is_signed, torch.Tensor.type,
    torch.is_floating_point, torch.is_complex, torch.numel, torch.is_tensor,
    torch.Tensor.__format__, torch.Tensor.storage_offset,
}
# Properties that depend only on a tensor's device, layout or dtype (multi_head_attention_forward
# reads is_nested): answered while tracing instead of recorded as calls.
_METADATA.update(
    getattr(torch.Tensor, p).__get__ for p in (
        "is_nested", "is_cpu", "is_mkldnn", "is_xpu", "is_mps", "is_sparse_csr", "is_xla", "is_ipu",
        "is_vulkan", "is_mtia", "is_maia", "itemsize", "nbytes")
    if hasattr(getattr(torch.Tensor, p, None), "__get__"))

# Functions whose results depend on tensor values.
_DATA_DEPENDENT = {
    torch.Tensor.__bool__: ("bool(tensor) (an `if`, `while`, `and`/`or` or `assert` on a tensor)", _BRANCH_ADVICE),
    torch.Tensor.item: ("tensor.item()", _BRANCH_ADVICE),
    torch.Tensor.tolist: ("tensor.tolist()", _BRANCH_ADVICE),
    torch.Tensor.__int__: ("int(tensor)", _BRANCH_ADVICE),
    torch.Tensor.__float__: ("float(tensor)", _BRANCH_ADVICE),
    torch.Tensor.__index__: ("using a tensor as a Python index or size", _BRANCH_ADVICE),
    torch.Tensor.__complex__: ("complex(tensor)", _BRANCH_ADVICE),
    torch.Tensor.numpy: ("tensor.numpy()", "Convert outside the jitted function."),
    torch.Tensor.__contains__: ("`value in tensor`", _BRANCH_ADVICE),
    torch.Tensor.nonzero: ("tensor.nonzero() (its output shape depends on the data)", "Use a mask with torch.where instead."),
    torch.nonzero: ("torch.nonzero (its output shape depends on the data)", "Use a mask with torch.where instead."),
    torch.Tensor.data_ptr: ("tensor.data_ptr()", "Read it outside the jitted function."),
    torch.equal: ("torch.equal (it returns a Python bool computed from values)", _BRANCH_ADVICE),
    torch.Tensor.equal: ("tensor.equal (it returns a Python bool computed from values)", _BRANCH_ADVICE),
    torch.unique: ("torch.unique (its output shape depends on the data)", "Compute it outside the jitted function."),
    torch.Tensor.unique: ("tensor.unique() (its output shape depends on the data)", "Compute it outside the jitted function."),
    torch.masked_select: ("torch.masked_select (its output shape depends on the data)", "Use torch.where with a mask instead."),
    torch.Tensor.masked_select: ("tensor.masked_select (its output shape depends on the data)", "Use torch.where with a mask instead."),
}
# nn.TransformerEncoder in eval mode with a padding mask checks the mask's values to run its layers on
# nested tensors (whose outputs are zero at the padded places).
if hasattr(torch, "_nested_tensor_from_mask_left_aligned"):
    _DATA_DEPENDENT[torch._nested_tensor_from_mask_left_aligned] = (
        ("nn.TransformerEncoder's nested-tensor fast path (eval mode with src_key_padding_mask "
         "checks the mask's values)"),
        ("Construct the encoder with enable_nested_tensor=False: its layers then run on the padded "
         "tensor, as in training."))

# Reflected operators: the symbol of the forward operator with the operands swapped.
_REFLECTED = {
    torch.Tensor.__radd__: "add", torch.Tensor.__rsub__: "sub", torch.Tensor.__rmul__: "mul",
    torch.Tensor.__rtruediv__: "div", torch.Tensor.__rdiv__: "div",
    torch.Tensor.__rfloordiv__: "floor_divide", torch.Tensor.__rmod__: "remainder",
    torch.Tensor.__rpow__: "pow", torch.Tensor.__rand__: "bitwise_and",
    torch.Tensor.__ror__: "bitwise_or", torch.Tensor.__rxor__: "bitwise_xor",
    torch.Tensor.__rmatmul__: "matmul", torch.Tensor.__rlshift__: "bitwise_left_shift",
    torch.Tensor.__rrshift__: "bitwise_right_shift",
}


def _resolve(path):
    obj = torch if path.startswith("torch") else None
    if obj is None:
        return None
    for part in path.split(".")[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class _Dispatch:
    """The table from torch callables to symbols, built once from the C++ op tables."""

    def __init__(self):
        self.by_fn = {}
        for sym in _core.symbols():
            if sym.is_prim:
                continue
            for path in sym.torch_names:
                fn = _resolve(path)
                if fn is not None:
                    self.by_fn.setdefault(fn, sym)
        # torch.relu_(x), torch.sigmoid_(x), F.relu_(x)...: the functions that update their first
        # argument in place as the Tensor method of the same name does.
        for mod in (torch, torch.nn.functional):
            for name in dir(mod):
                if not name.endswith("_") or name.startswith("_"):
                    continue
                sym = self.by_fn.get(getattr(torch.Tensor, name, None))
                fn = getattr(mod, name)
                if sym is not None and fn not in self.by_fn:
                    self.by_fn[fn] = sym
        self.reflected = {}
        for fn, name in _REFLECTED.items():
            sym = _core.find_symbol("ltorch", name)
            if sym is not None:
                self.reflected[fn] = sym
        self.copy_ = _core.find_symbol("ltorch", "copy_")
        # Operators defined with thunder.extend that adapt how their calls are recorded (packed
        # *args/**kwargs, bind_postprocess): qualname -> hook(record, args, kwargs).
        self.record_hooks = {}


_dispatch = None


def dispatch_table() -> _Dispatch:
    global _dispatch
    if _dispatch is None:
        _dispatch = _Dispatch()
    return _dispatch


def _callable_name(fn):
    """(module, name) a callable prints as in traces."""
    if isinstance(fn, (torch._ops.OpOverloadPacket, torch._ops.OpOverload)):  # torch.ops.<ns>.<op>[.<overload>]
        packet = fn if isinstance(fn, torch._ops.OpOverloadPacket) else fn.overloadpacket
        namespace, _, op = packet._qualified_op_name.partition("::")
        overload = "" if fn is packet else f".{fn._overloadname}"
        return f"torch.ops.{namespace}", f"{op}{overload}"
    name = getattr(fn, "__name__", None) or type(fn).__name__
    for mod, prefix in ((torch, "torch"), (torch.nn.functional, "torch.nn.functional"),
                        (torch.Tensor, "torch.Tensor"), (torch.special, "torch.special"),
                        (torch.linalg, "torch.linalg"), (torch.fft, "torch.fft")):
        if getattr(mod, name, None) is fn:
            return prefix, name
    qual = getattr(fn, "__qualname__", name)
    module = getattr(fn, "__module__", None) or "torch"
    if "." in qual:
        head, _, name = qual.rpartition(".")
        module = f"{module}.{head}"
    return module, name


def _strides(p):
    """The strides of a proxy as eager would have them (layout-tracked when not contiguous)."""
    s = getattr(p, "_thunder_strides", None)
    return s if s is not None else torch.Tensor.stride(p)


def _to_meta(x, device="meta"):
    """x with its proxies and tensors replaced by empty tensors of their shapes, strides and dtypes
    on `device` (None: each on its own device, for fake tensors)."""
    if isinstance(x, TensorProxy):
        return torch.empty_strided(tuple(x.shape), _strides(x), dtype=x.dtype, device=device or x.device)
    if isinstance(x, (list, tuple)):
        items = (_to_meta(i, device) for i in x)
        return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
    if isinstance(x, dict):
        return {k: _to_meta(v, device) for k, v in x.items()}
    if isinstance(x, torch.Tensor):
        return torch.empty(tuple(x.shape), dtype=x.dtype, device=device or x.device)
    return x


def _dtype_name(dtype):
    """Eager's spelling of a dtype in its errors (Float, Long, BFloat16, ...)."""
    return torch.empty((), dtype=dtype, device="meta").type().split(".")[-1].replace("Tensor", "")


def _fake_call(func, args, kwargs):
    """func's outputs on fake tensors with the proxies' devices, dtypes, shapes and strides, as meta
    tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        out = func(*_to_meta(args, None), **_to_meta(kwargs, None))
    return _to_meta(out)


def _inplace_flag(func, args, kwargs):
    """Splits an `inplace=` argument off a call (F.relu(x, inplace=True) ...). Returns
    (inplace, args, kwargs)."""
    if "inplace" in kwargs:
        kwargs = dict(kwargs)
        return bool(kwargs.pop("inplace")), args, kwargs
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return False, args, kwargs
    names = list(sig.parameters)
    if "inplace" in names:
        i = names.index("inplace")
        if i < len(args):
            flag = bool(args[i])
            return flag, tuple(args[:i]) + tuple(args[i + 1:]), kwargs
    return False, args, kwargs


# Calls that return their input itself in eager, when the predicate holds (a real tensor's .real and
# conj(), positive() of a number tensor, atleast_nd of a tensor with n dims or more).
_RETURNS_ITS_INPUT = {
    **{f: (lambda x, **k: not x.is_complex()) for f in (
        torch.Tensor.real.__get__, torch.real, torch.conj, torch.Tensor.conj, torch.resolve_conj,
        torch.Tensor.resolve_conj, torch.resolve_neg, torch.Tensor.resolve_neg)},
    **{f: (lambda x, **k: x.dtype != torch.bool) for f in (torch.positive, torch.Tensor.positive)},
    torch.atleast_1d: lambda *xs, **k: len(xs) == 1 and xs[0].ndim >= 1,
    torch.atleast_2d: lambda *xs, **k: len(xs) == 1 and xs[0].ndim >= 2,
    torch.atleast_3d: lambda *xs, **k: len(xs) == 1 and xs[0].ndim >= 3,
}

# Tensor properties that are views, as the calls they equal (`x.T` is `x.permute(n-1, ..., 0)`;
# on real tensors `x.H` and `x.mH` equal `x.T` and `x.mT`).
_PROPERTY_VIEWS = {
    torch.Tensor.T.__get__: lambda x: (torch.permute, (x, tuple(range(x.ndim - 1, -1, -1)))),
    torch.Tensor.H.__get__: lambda x: (torch.permute, (x, tuple(range(x.ndim - 1, -1, -1)))),
    torch.Tensor.mT.__get__: lambda x: (torch.transpose, (x, -2, -1)),
    torch.Tensor.mH.__get__: lambda x: (torch.transpose, (x, -2, -1)),
    # x.data: the same memory without autograd history (in-place writes through it reach x, as
    # `p.data.clamp_(-c, c)` relies on).
    torch.Tensor.data.__get__: lambda x: (torch.Tensor.detach, (x,)),
}

def _complex_first(args, kwargs):
    x = args[0] if args else kwargs.get("input")
    return isinstance(x, torch.Tensor) and x.is_complex()


def _complex_any(args, kwargs):
    return any(isinstance(a, torch.Tensor) and a.is_complex() for a in (*args, *kwargs.values()))


def _needs_grad(args, kwargs):
    return torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad
                                           for a in (*args, *kwargs.values()))


def _needs_grad_at(position, name):
    def check(args, kwargs):
        t = args[position] if len(args) > position else kwargs.get(name)
        return torch.is_grad_enabled() and isinstance(t, torch.Tensor) and t.requires_grad
    return check


def _logit_eps_needs_grad(args, kwargs):
    eps = args[1] if len(args) > 1 else kwargs.get("eps")
    return eps is not None and eps >= 0 and _needs_grad(args[:1], {})


def _interpolate_not_nearest(args, kwargs):
    mode = args[3] if len(args) > 3 else kwargs.get("mode", "nearest")
    return mode not in ("nearest", "nearest-exact")


def _einsum_diagonal(args, kwargs):
    """einsum with a subscript repeated within one operand (a diagonal): its torch call."""
    eq = args[0] if args and isinstance(args[0], str) else kwargs.get("equation", "")
    return any(len(t.replace("...", "")) != len(set(t.replace("...", "")))
               for t in eq.replace(" ", "").split("->")[0].split(","))


def _training(position):
    def check(args, kwargs):
        return bool(args[position] if len(args) > position else kwargs.get("training", False))
    return check


# Calls that run as opaque torch calls though thunder has a rule for the function: interpolate's
# covers the nearest modes, einsum's subscripts that appear once an operand; the rules of
# logaddexp, nan_to_num and float_power cover real tensors (eager takes complex ones too), rrelu's
# its eval form (in training its slopes are random), heaviside's and soft_margin_loss's target's no
# gradient (eager has no derivative for them and raises, which their torch calls keep), logit's with
# eps when its input needs a gradient (at a NaN input eager's backward gives 0 in its vectorised
# loop and NaN in its scalar one, so the gradient depends on the element's position).
_TORCH_CALL_WHEN = {
    torch.logaddexp: _complex_first, torch.Tensor.logaddexp: _complex_first,
    torch.nan_to_num: _complex_first, torch.Tensor.nan_to_num: _complex_first,
    torch.float_power: _complex_any, torch.Tensor.float_power: _complex_any,
    torch.heaviside: _needs_grad, torch.Tensor.heaviside: _needs_grad,
    torch.nn.functional.soft_margin_loss: _needs_grad_at(1, "target"),
    torch.logit: _logit_eps_needs_grad, torch.Tensor.logit: _logit_eps_needs_grad,
    torch.special.logit: _logit_eps_needs_grad,
    torch.nn.functional.rrelu: _training(3),
    torch.nn.functional.interpolate: _interpolate_not_nearest,
    torch.einsum: _einsum_diagonal,
    # digamma's derivative is polygamma(1, x), which has no primitive: torch's autograd gives it
    torch.digamma: _needs_grad, torch.Tensor.digamma: _needs_grad, torch.special.digamma: _needs_grad,
    torch.special.psi: _needs_grad,
}


def _complex_operands(args, kwargs):
    """Whether a call runs as a torch call because of complex values: a Python complex number
    (thunder's scalars are real), or, while gradients are recorded, a complex tensor or dtype with
    an input that requires a gradient (thunder's gradient rules are those of real values; torch's
    autograd differentiates complex ones)."""
    stack = [*args, *kwargs.values()]
    complex_value = needs_grad = False
    while stack:
        a = stack.pop()
        if isinstance(a, torch.Tensor):
            complex_value = complex_value or a.is_complex()
            needs_grad = needs_grad or a.requires_grad
        elif isinstance(a, complex):
            return True
        elif isinstance(a, torch.dtype):
            complex_value = complex_value or a.is_complex
        elif isinstance(a, (list, tuple)):
            stack.extend(a)
    return complex_value and needs_grad and torch.is_grad_enabled()


def _detect_is_causal_while_tracing(mask=None, is_causal=None, size=None):
    """torch.nn's transformer modules compare a mask with the causal mask by value to pick a faster
    kernel, a comparison that needs the mask's data. While tracing the answer is "not known to be
    causal" unless the caller said so: the mask is then applied as given, which torch documents as
    correct (only possibly slower)."""
    if isinstance(mask, TensorProxy):
        return is_causal is True
    return _detect_is_causal_eager(mask, is_causal, size)


def _flatten_parameters_while_tracing(self):
    """An RNN module on CUDA regroups its weights into one block of memory before each call when they
    are not (cuDNN's layout; the values stay the same), a choice made by comparing the weights'
    addresses. While tracing the weights are proxies, which have no address: the regrouping is left
    to eager calls, and the traced call reads the weights as they are."""
    if any(isinstance(w, TensorProxy) for w in getattr(self, "_flat_weights", ())):
        return None
    return _flatten_parameters_eager(self)


@contextlib.contextmanager
def _rng_kept():
    """Puts torch's random generators back as they were: a call made only to learn its outputs'
    shapes (torch.randperm(n), torch.normal(0., 1., size)) must not draw numbers the program will
    draw when it runs."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _refused_while_tracing(eager, what, effect):
    """`eager` on threads that are not tracing; refused on one that is: a change of global state
    (`effect`) would happen while tracing only, not when the program runs."""
    def replacement(*args, **kwargs):
        if not _TRACING.modes:  # another thread, not tracing
            return eager(*args, **kwargs)
        raise NotImplementedError(
            f"thunder cannot trace {what} inside a jitted function: {effect} only while tracing, not "
            f"when the program runs. Call it outside the jitted function")

    return replacement


_manual_seed_while_tracing = _refused_while_tracing(torch.manual_seed, "torch.manual_seed",
                                                    "the seed would be set")
_set_default_dtype_while_tracing = _refused_while_tracing(torch.set_default_dtype, "torch.set_default_dtype",
                                                          "the default would change")


class _ApplyOf:
    """A torch.autograd.Function's own apply, as a callable the program runs (by torch, opaque)."""

    _made: ClassVar[dict] = {}

    def __init__(self, cls):
        self.cls = cls
        self.__name__ = "apply"
        self.__qualname__ = f"{cls.__qualname__}.apply"
        self.__module__ = getattr(cls, "__module__", None) or "torch"

    @classmethod
    def of(cls, fn_cls):
        made = cls._made.get(fn_cls)
        if made is None:
            made = cls._made[fn_cls] = cls(fn_cls)
        return made

    def __call__(self, *args, **kwargs):
        return _function_apply_eager(self.cls, *args, **kwargs)


def _function_apply_while_tracing(cls, *args, **kwargs):
    """A custom torch.autograd.Function applied to tensors that require grad, with grad mode on: one
    opaque call, run by torch, so its own backward gives the gradient (its forward runs under
    no_grad: traced inline, its operations had no gradient, and the gradient through it was lost).
    Otherwise its forward is traced inline as before."""
    flat = [*args, *kwargs.values()]
    if _TRACING.modes and torch.is_grad_enabled() and any(
            isinstance(a, TensorProxy) and a.requires_grad for a in flat):
        with torch._C.DisableTorchFunction():  # its meta call below is not part of the program
            return _TRACING.modes[-1]._record_opaque(_ApplyOf.of(cls), args, kwargs)
    return _function_apply_eager(cls, *args, **kwargs)


# torch functions replaced while a function is traced: (owner, name, replacement); the originals are
# put back when tracing ends.
_TRACING_PATCHES = []
try:
    from torch.nn.modules import transformer as _transformer_module

    _detect_is_causal_eager = _transformer_module._detect_is_causal_mask
    _TRACING_PATCHES.append((_transformer_module, "_detect_is_causal_mask", _detect_is_causal_while_tracing))
except (ImportError, AttributeError):  # a torch without it
    pass
_flatten_parameters_eager = torch.nn.RNNBase.flatten_parameters
_TRACING_PATCHES.append((torch.nn.RNNBase, "flatten_parameters", _flatten_parameters_while_tracing))
_TRACING_PATCHES.append((torch, "manual_seed", _manual_seed_while_tracing))
_TRACING_PATCHES.append((torch.random, "manual_seed", _manual_seed_while_tracing))
_TRACING_PATCHES.append((torch, "set_default_dtype", _set_default_dtype_while_tracing))
_function_apply_eager = torch.autograd.Function.__dict__["apply"].__func__
_TRACING_PATCHES.append((torch.autograd.Function, "apply", classmethod(_function_apply_while_tracing)))
# As each owner holds them (a classmethod object, not the bound method getattr gives).
_PATCHED_ORIGINALS = [vars(owner)[name] for owner, name, _ in _TRACING_PATCHES]
_patched_threads = 0  # threads tracing now (the patches above are installed while any does)
_patch_lock = threading.Lock()


class _Tracing(threading.local):
    """This thread's tracing: the capture modes it entered, innermost last."""

    def __init__(self):
        self.modes = []


_TRACING = _Tracing()


class CaptureMode(TorchFunctionMode):
    """Routes every torch call made while it is active into a CaptureSession."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.table = dispatch_table()
        self.grad_enabled = torch.is_grad_enabled()
        self.initial_grad_enabled = self.grad_enabled
        self.enabled_grad = False  # the function turned grad mode on somewhere (torch.enable_grad())
        self.layout_read = False  # x.stride() / x.is_contiguous() answered: the guard keeps strides
        self._set_grad = _core.find_symbol("prims", "set_grad_enabled")

    def sync_grad_mode(self):
        """Records a grad-mode switch when the traced function entered or left torch.no_grad()."""
        mode = torch.is_grad_enabled()
        if mode != self.grad_enabled:
            self.grad_enabled = mode
            self.enabled_grad = self.enabled_grad or mode
            self.session.record(self._set_grad, (mode,), {}, _where())

    def __enter__(self):
        global _patched_threads
        if not _TRACING.modes:
            with _patch_lock:
                if _patched_threads == 0:
                    for owner, name, replacement in _TRACING_PATCHES:
                        setattr(owner, name, replacement)
                _patched_threads += 1
        _TRACING.modes.append(self)
        _core._set_tracing_depth(len(_TRACING.modes))
        _core._set_default_float_dtype(torch.get_default_dtype())
        return super().__enter__()

    def __exit__(self, *exc):
        global _patched_threads
        _TRACING.modes.pop()
        _core._set_tracing_depth(len(_TRACING.modes))
        if not _TRACING.modes:
            with _patch_lock:
                _patched_threads -= 1
                if _patched_threads == 0:
                    for (owner, name, _), original in zip(_TRACING_PATCHES, _PATCHED_ORIGINALS):
                        setattr(owner, name, original)
        if self.grad_enabled != self.initial_grad_enabled:
            self.grad_enabled = self.initial_grad_enabled
            self.session.record(self._set_grad, (self.initial_grad_enabled,), {}, "")
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("out") is not None and func not in _METADATA:
            # out=: the call out of place, then its result copied into `out` (as eager writes it).
            out = kwargs["out"]
            rest = {k: v for k, v in kwargs.items() if k != "out"}
            # eager's checks of out= (its dtype: matmul's must match, add's may be wider); without a
            # meta kernel, the checks of _write_out alone.
            refused = None
            try:
                func(*_to_meta(args), **_to_meta(rest), out=_to_meta(out))
            except RuntimeError as e:
                refused = None if "meta" in str(e).lower() else e
            except Exception:  # noqa: BLE001 - no meta kernel
                refused = None
            if refused is not None:
                raise _with_location(refused) from None
            result = self.__torch_function__(func, types, args, rest)
            try:
                return self._write_out(func, result, out)
            except (TypeError, RuntimeError, NotImplementedError) as e:
                raise _with_location(e) from None
        if _autocast.any_enabled():
            args, kwargs = self._autocast(func, types, args, kwargs)
        if func is torch.nn.functional.embedding:
            bound = _EMBEDDING_SIGNATURE.bind(*args, **kwargs)
            if bound.arguments.get("max_norm") is not None and isinstance(bound.arguments.get("weight"), TensorProxy):
                # The looked-up rows renormalized in place first (without history, as eager's
                # embedding_renorm_), then the lookup without max_norm.
                self._embedding_renorm(types, bound.arguments["weight"], bound.arguments["input"],
                                       bound.arguments["max_norm"], bound.arguments.get("norm_type", 2.0))
                bound.arguments["max_norm"] = None
                return self.__torch_function__(func, types, bound.args, bound.kwargs)
        same = _RETURNS_ITS_INPUT.get(func)
        if same is not None and args and all(isinstance(a, TensorProxy) for a in args) and same(*args, **kwargs):
            # Eager returns the input itself (an in-place update through the result reaches it).
            return args[0]
        if func is torch.broadcast_tensors and args and all(isinstance(a, TensorProxy) for a in args):
            shape = torch.broadcast_shapes(*(a.shape for a in args))
            return tuple(a if a.shape == shape else self.__torch_function__(torch.Tensor.expand, types, (a, shape), {})
                         for a in args)
        prop = _PROPERTY_VIEWS.get(func)
        if prop is not None and args and not args[0].is_complex():
            view_fn, view_args = prop(args[0])
            return self.__torch_function__(view_fn, types, view_args, {})
        sym = self.table.by_fn.get(func)
        torch_call = _TORCH_CALL_WHEN.get(func)
        if torch_call is not None and torch_call(args, kwargs):
            sym = None
        if sym is not None and _complex_operands(args, kwargs):
            sym = None
        try:
            if func is torch.where and len(args) + len(kwargs) == 1:
                raise _data_dependent("torch.where(condition) with one argument (its output shape "
                                      "depends on the data)",
                                      "Use the three-argument torch.where(condition, x, y) instead.")
            if sym is not None:
                # inplace=True (F.silu(x, inplace=True), nn.Hardswish(inplace=True)): the function
                # out of place, then its result copied into the input.
                takes_inplace = "inplace" in sym.signature or _takes_inplace(func)
                inplace, args2, kwargs2 = _inplace_flag(func, args, kwargs) if takes_inplace else (False, args, kwargs)
                if inplace:
                    out = self._record(sym, args2, kwargs2)
                    return self._record(self.table.copy_, (args2[0] if args2 else kwargs2["input"], out), {})
                fix = _ARG_FIXES.get(func)
                if fix is not None:
                    args2, kwargs2 = fix(args2, kwargs2)
                out = self._record(sym, args2, kwargs2)
                named = _RETURN_TYPES.get(func)
                if named is not None and isinstance(out, tuple):
                    out = named(out)
                if func in _LAYOUT_OPS:
                    _track_layout(out, func, args2, kwargs2)
                return out
            sym = self.table.reflected.get(func)
            if sym is not None:
                return self._record(sym, (args[1], args[0]) + tuple(args[2:]), kwargs)
            if func is torch._C._set_grad_enabled:
                # torch.no_grad() / enable_grad() inside the function: switch for real (later ops see
                # the mode) and record the switch before the next operation.
                with torch._C.DisableTorchFunction():
                    return func(*args, **kwargs)
            if func in _LAYOUT_QUERIES and args and isinstance(args[0], TensorProxy):
                # The answer may depend on the inputs' strides, which contiguity alone does not fix.
                self.layout_read = True
                if getattr(args[0], "_thunder_strides", None) is not None:
                    return func(_to_meta(args[0]), *args[1:], **kwargs)
            if func in _GRADIENT_CALLS:
                module, name = _callable_name(func)
                raise NotImplementedError(
                    f"thunder cannot trace {module}.{name} inside a jitted function: gradients of a "
                    f"traced function come from its program's backward, after the program runs (a "
                    f"gradient penalty or higher-order gradients inside the function are not supported "
                    f"yet). Return the loss and call backward() / torch.autograd.grad outside the "
                    f"jitted function")
            if func == _GRAD_GET and args and getattr(args[0], "_thunder_input", False):
                # An input's .grad is the caller's tensor (or None): the program cannot read it, and
                # None would silently skip an update (`if p.grad is None: continue`).
                raise NotImplementedError(
                    "thunder cannot read an input's .grad inside a jitted function (the gradient is not "
                    "an input of the program); pass the gradients as arguments, or run the code that "
                    "reads them (an optimizer step) outside the jitted function")
            if (func == _IS_LEAF_GET or func == _GRAD_FN_GET) and args and isinstance(args[0], TensorProxy):
                # As eager answers: an input as the caller's tensor is (parameters are leaves); a
                # tensor that does not require grad is a leaf (grad_fn None); a result computed from
                # tensors that require grad is not.
                leaf = getattr(args[0], "_thunder_leaf", True) if getattr(args[0], "_thunder_input", False) \
                    else not args[0].requires_grad
                if func == _IS_LEAF_GET:
                    return leaf
                return None if leaf else _TracedGradFn()
            if func in _METADATA:
                with torch._C.DisableTorchFunction():
                    return func(*args, **kwargs)
            dd = _DATA_DEPENDENT.get(func)
            if dd is not None:
                raise _data_dependent(*dd)
            if func is torch.Tensor.__iter__:
                return iter(self._record(_core.find_symbol("ltorch", "unbind"), (args[0], 0), {}))
            if func is torch.Tensor.__hash__:
                return id(args[0])
            if func is torch.Tensor.__setstate__ or func is torch.Tensor.__reduce_ex__:
                raise NotImplementedError("thunder cannot pickle or copy a tensor while tracing")
            functional = _functional_of_inplace(func, args)
            if functional is not None:
                return self._inplace_through(func, functional, types, args, kwargs)
            return self._record_opaque(func, args, kwargs)
        except DataDependentError:
            raise
        except (TypeError, ValueError, IndexError, NotImplementedError, RuntimeError) as e:
            raise _with_location(e) from None

    def _embedding_renorm(self, types, weight, indices, max_norm, norm_type):
        """Eager's embedding_renorm_: each looked-up row whose norm exceeds max_norm is scaled by
        max_norm / (norm + 1e-7), in place and without history (the weight stays a leaf that
        differentiates as itself). Repeated indices write the same values."""
        def call(fn, *a, **k):
            return self.__torch_function__(fn, types, a, k)

        with torch.no_grad():
            flat = call(torch.Tensor.reshape, indices, (-1,))
            rows = call(torch.Tensor.__getitem__, weight, flat)
            norms = call(torch.linalg.vector_norm, rows, norm_type, -1, True)
            scale = call(torch.where, call(torch.gt, norms, max_norm),
                         call(torch.Tensor.__rtruediv__, call(torch.add, norms, 1e-7), max_norm), 1.0)
            call(torch.Tensor.__setitem__, call(torch.Tensor.detach, weight), flat,
                 call(torch.mul, rows, scale))

    def _inplace_through(self, func, functional, types, args, kwargs):
        """An in-place method without a thunder rule (`x.index_add_(...)`, `x.cumsum_(0)`): its
        out-of-place form, then the result copied into x, which is what eager's in-place variants
        compute. torch's meta kernel checks the call first, so refusals carry eager's messages."""
        try:
            func(*_to_meta(args), **_to_meta(kwargs))
        except RuntimeError as e:
            if "meta" not in str(e).lower():
                raise
        except Exception:  # noqa: BLE001, S110 - no meta kernel: the checks below alone
            pass
        x = args[0]
        result = self.__torch_function__(functional, types, args, kwargs)
        module, name = _callable_name(func)
        if not isinstance(result, torch.Tensor):
            raise NotImplementedError(f"thunder cannot trace {module}.{name}: its out-of-place form "
                                      f"does not return one tensor")
        if tuple(result.shape) != tuple(x.shape):
            raise RuntimeError(f"{module}.{name}: the result of shape {tuple(result.shape)} cannot be "
                               f"written into a tensor of shape {tuple(x.shape)} in place")
        _check_castable(result, x)
        return self._record(self.table.copy_, (x, result), {})

    def _write_out(self, func, result, out):
        """`result` copied into the tensors of `out` (a tensor, or a tuple for calls with several
        outputs); returns `out` updated."""
        module, name = _callable_name(func)
        if isinstance(out, (tuple, list)) and isinstance(result, (tuple, list)) and len(out) == len(result):
            written = [self._write_out(func, r, o) for r, o in zip(result, out)]
            named = _RETURN_TYPES.get(func)
            return named(written) if named is not None else type(out)(written)
        if not isinstance(out, torch.Tensor) or not isinstance(result, torch.Tensor):
            raise TypeError(f"{module}.{name}: out= must match its result's structure")
        _check_castable(result, out)
        if tuple(out.shape) != tuple(result.shape):
            raise NotImplementedError(
                f"thunder does not support {module}.{name} with an out= tensor of shape "
                f"{tuple(out.shape)} for a result of shape {tuple(result.shape)} (eager resizes it); "
                f"pass an out= tensor of the result's shape, or use the out-of-place form")
        return self._record(self.table.copy_, (out, result), {})

    def _record(self, sym, args, kwargs):
        self.sync_grad_mode()
        hook = self.table.record_hooks.get(sym.qualname) if self.table.record_hooks else None
        if hook is not None:
            return hook(lambda a, k: self.session.record(sym, a, k, _where()), args, kwargs)
        return self.session.record(sym, args, kwargs, _where())

    def _autocast(self, func, types, args, kwargs):
        """The casts torch.autocast would apply to this call, recorded as explicit conversions."""
        policy = _autocast.cast_policy(func, args, kwargs)
        if policy is None:
            return args, kwargs
        device_type, dtype = policy

        def cast(t, dt):
            return self.__torch_function__(torch.Tensor.to, types, (t, dt), {})

        args = _autocast.cast_eligible(tuple(args), device_type, dtype, cast)
        kwargs = {k: _autocast.cast_eligible(v, device_type, dtype, cast) for k, v in kwargs.items()}
        return args, kwargs

    def _record_opaque(self, func, args, kwargs):
        module, name = _callable_name(func)
        if _takes_inplace(func) and _inplace_flag(func, args, kwargs)[0]:
            raise NotImplementedError(
                f"thunder does not support {module}.{name} writing into an existing tensor "
                f"(inplace=True) yet; use its out-of-place form"
            )
        if (name.endswith("_") and not name.endswith("__")) or name in _INPLACE_DUNDERS:
            raise NotImplementedError(
                f"thunder does not support the in-place operation {module}.{name} yet; "
                f"use its out-of-place form"
            )
        autocast_state = _autocast.state() if _autocast.any_enabled() else ()
        if autocast_state:
            # Under autocast the call casts inside itself (a Python composite such as
            # multi_head_attention_forward, an RNN's kernel): it runs under the same state, and its
            # outputs' dtypes come from fake tensors on the inputs' devices (meta tensors are on no
            # device autocast applies to).
            func = _autocast.Under.of(func, autocast_state)
            module = func.__module__
        try:
            with _rng_kept():  # a random function without tensor inputs runs for real here
                # A custom autograd Function may read real tensors it closes over: fake tensors
                # accept them, meta tensors do not.
                fake = autocast_state or isinstance(func, _ApplyOf)
                meta_out = _fake_call(func, args, kwargs) if fake else func(*_to_meta(args), **_to_meta(kwargs))
        except Exception as e:  # the meta kernel refused: thunder cannot know the output
            raise NotImplementedError(
                f"thunder cannot trace {module}.{name}: it has no thunder rule and torch's meta "
                f"kernel failed ({type(e).__name__}: {e})"
            ) from None
        if meta_out is None:
            raise NotImplementedError(
                f"thunder cannot trace {module}.{name}: it returns nothing, so it is called for a side "
                f"effect thunder cannot replay; call it outside the jitted function"
            )
        self.sync_grad_mode()
        out = self.session.record_opaque(func, module, name, args, kwargs, meta_out, _where())
        named = _RETURN_TYPES.get(func)
        return named(out) if named is not None and isinstance(out, tuple) else out


# Ops whose outputs may not be contiguous even when their inputs are: their strides are worked out
# on meta tensors, so stride()/is_contiguous() while tracing answer as in eager for inputs and views
# of them. Other ops' outputs are reported contiguous (working out what eager's layout propagation
# would give costs milliseconds per op in torch's reference kernels); the program itself runs with
# the real tensors, so this only affects what user code reads from stride()/is_contiguous().
_LAYOUT_OPS = {
    f for f in (
        torch.transpose, torch.Tensor.transpose, torch.permute, torch.Tensor.permute, torch.t,
        torch.Tensor.t, torch.Tensor.T.__get__, torch.Tensor.mT.__get__, torch.Tensor.mH.__get__,
        torch.Tensor.H.__get__, torch.swapaxes, torch.Tensor.swapaxes, torch.swapdims,
        torch.Tensor.swapdims, torch.movedim, torch.Tensor.movedim, torch.moveaxis,
        torch.Tensor.moveaxis, torch.Tensor.expand, torch.Tensor.expand_as, torch.broadcast_to,
        torch.Tensor.broadcast_to, torch.Tensor.__getitem__, torch.narrow, torch.Tensor.narrow,
        torch.select, torch.Tensor.select, torch.diagonal, torch.Tensor.diagonal,
        torch.Tensor.unfold, torch.split, torch.Tensor.split, torch.chunk, torch.Tensor.chunk,
        torch.unbind, torch.Tensor.unbind, torch.tensor_split, torch.Tensor.tensor_split,
        torch.as_strided, torch.Tensor.as_strided,
    ) if f is not None
}
def _dtype_third(args, kwargs):
    """torch.softmax(x, dim, dtype) and Tensor.softmax(dim, dtype): the third positional is dtype
    (F.softmax's third is _stacklevel, which the symbol's signature follows)."""
    if len(args) >= 3:
        kwargs = dict(kwargs, dtype=args[2])
        args = tuple(args[:2])
    return args, kwargs


def _eager_ignores_nan_scalar_bound():
    """Whether this torch's clamp leaves values alone for a Python float NaN bound (older releases;
    newer ones give NaN, as thunder's clamp does)."""
    with torch._C.DisableTorchFunction():
        return not bool(torch.tensor([1.0]).clamp(min=math.nan).isnan().all())


_CLAMP_IGNORES_NAN = _eager_ignores_nan_scalar_bound()


def _clamp_bounds(args, kwargs, ignores_nan=None):
    """clamp(x, min, max) with a Python float NaN bound: made unbounded (-inf, inf) where eager ignores
    one (dropping it could leave clamp with no bound at all, which is an error)."""
    if not (_CLAMP_IGNORES_NAN if ignores_nan is None else ignores_nan):
        return args, kwargs
    args, kwargs = list(args), dict(kwargs)
    for i, name in ((1, "min"), (2, "max")):
        if i < len(args) and isinstance(args[i], float) and math.isnan(args[i]):
            args[i] = -math.inf if name == "min" else math.inf
        if isinstance(kwargs.get(name), float) and math.isnan(kwargs[name]):
            kwargs[name] = -math.inf if name == "min" else math.inf
    return tuple(args), kwargs


_ARG_FIXES = {f: _dtype_third for f in (torch.softmax, torch.Tensor.softmax, torch.log_softmax,
                                        torch.Tensor.log_softmax)}
_ARG_FIXES.update({f: _clamp_bounds for f in (torch.clamp, torch.Tensor.clamp, torch.clip, torch.Tensor.clip,
                                               torch.clamp_, torch.Tensor.clamp_, torch.Tensor.clip_)})


def _sizes_as_varargs(args, kwargs):
    """x.broadcast_to(2, 2, 3): the sizes as one tuple, as torch.broadcast_to takes them."""
    if len(args) > 2 and all(isinstance(a, int) for a in args[1:]):
        return (args[0], tuple(args[1:])), kwargs
    return args, kwargs


_ARG_FIXES[torch.Tensor.broadcast_to] = _sizes_as_varargs

# Ops that return a named tuple in eager (`torch.max(x, 1).values`).
_RETURN_TYPES = {}
for _name in ("max", "min", "sort", "topk", "kthvalue", "mode", "median", "nanmedian", "aminmax",
              "cummax", "cummin", "frexp", "var_mean", "std_mean"):
    _rt = getattr(torch.return_types, _name, None)
    if _rt is None:
        continue
    for _f in (getattr(torch, _name, None), getattr(torch.Tensor, _name, None)):
        if _f is not None:
            _RETURN_TYPES[_f] = _rt

_LAYOUT_QUERIES = {torch.Tensor.stride, torch.Tensor.is_contiguous}
_GRADIENT_CALLS = {torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward}
_GRAD_GET = torch.Tensor.grad.__get__
_IS_LEAF_GET = torch.Tensor.is_leaf.__get__
_GRAD_FN_GET = torch.Tensor.grad_fn.__get__


class _TracedGradFn:
    """A traced result's grad_fn: there is one (`x.grad_fn is not None` holds, as in eager), but the
    autograd graph is built when the program runs, so it cannot be inspected while tracing."""

    def __getattr__(self, name):
        raise NotImplementedError(
            f"thunder cannot inspect a grad_fn while tracing (grad_fn.{name}): the autograd graph is "
            f"built when the program runs")


def _walk_proxies(x):
    if isinstance(x, TensorProxy):
        yield x
    elif isinstance(x, (list, tuple)):
        for i in x:
            yield from _walk_proxies(i)
    elif isinstance(x, dict):
        for i in x.values():
            yield from _walk_proxies(i)


def _track_layout(out, func, args, kwargs):
    """Records on `out`'s proxies the strides eager would give them (computed on meta tensors)."""
    try:
        with torch._C.DisableTorchFunction():
            meta = func(*_to_meta(args), **_to_meta(kwargs))
    except Exception:  # the op has no meta kernel: strides stay unknown (reported contiguous)
        return
    outs = list(_walk_proxies(out))
    metas = [m for m in _walk_meta(meta)]
    if len(outs) != len(metas):
        return
    for p, m in zip(outs, metas):
        if tuple(p.shape) != tuple(m.shape):
            continue
        strides = tuple(m.stride())
        if strides != torch.Tensor.stride(p):
            p._thunder_strides = strides


def _walk_meta(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for i in x:
            yield from _walk_meta(i)


_INPLACE_FUNCS = None


_EMBEDDING_SIGNATURE = inspect.signature(torch.nn.functional.embedding)


# Augmented assignments torch runs in place (x <<= 1): without a thunder rule, refused like other
# in-place calls (as an out-of-place call, later updates of x would not reach the caller's tensor).
_INPLACE_DUNDERS = {f"__i{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow",
                                            "matmul", "and", "or", "xor", "lshift", "rshift")}


# In-place methods that change the tensor's shape or strides (or its autograd state) rather than its
# values: not the copy of an out-of-place result, so never traced through one.
_METADATA_INPLACE = {"t_", "transpose_", "swapdims_", "swapaxes_", "squeeze_", "unsqueeze_",
                     "as_strided_", "resize_", "resize_as_", "set_", "detach_", "requires_grad_",
                     "share_memory_", "map_", "map2_", "apply_", "rename_"}


def _check_castable(result, dst):
    """Eager's refusal to write a result into a tensor of a dtype it cannot be cast to (in-place and
    out= calls)."""
    if not torch.can_cast(result.dtype, dst.dtype):
        raise RuntimeError(f"result type {_dtype_name(result.dtype)} can't be cast to the desired "
                           f"output type {_dtype_name(dst.dtype)}")


def _functional_of_inplace(func, args):
    """The out-of-place form of an in-place Tensor method (`index_add_` -> `index_add`, `__ilshift__`
    -> `__lshift__`) applied to a traced tensor; None for anything else."""
    name = getattr(func, "__name__", "")
    if not args or not isinstance(args[0], TensorProxy) or getattr(torch.Tensor, name, None) is not func:
        return None
    if name in _INPLACE_DUNDERS:
        functional = "__" + name[3:]
    elif name.endswith("_") and not name.endswith("__") and name not in _METADATA_INPLACE:
        functional = name[:-1]
    else:
        return None
    return getattr(torch.Tensor, functional, None)


def _takes_inplace(func):
    global _INPLACE_FUNCS
    if _INPLACE_FUNCS is None:
        F = torch.nn.functional
        _INPLACE_FUNCS = {
            getattr(F, n) for n in (
                "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "hardtanh", "silu", "mish",
                "hardswish", "hardsigmoid", "threshold", "dropout", "dropout1d", "dropout2d",
                "dropout3d", "alpha_dropout", "rrelu",
            ) if hasattr(F, n)
        }
    return func in _INPLACE_FUNCS


def _make_proxy(handle, shape, dtype, device, requires_grad, strides=None):
    return TensorProxy(handle, shape, dtype, device, requires_grad, strides)


def new_session():
    return _core.CaptureSession(_make_proxy, TensorProxy)
