"""User-defined gradients (Lightning Thunder's `register_augmented_forward` / `register_backward`
pair, and `register_grad`).

thunder differentiates traces in C++ (csrc/autograd/): every primitive and the common torch ops have
rules there. An operator thunder cannot differentiate (an operator made with
`thunder.extend.OperatorExecutor.register_operator`, an opaque torch function) gets its gradient from
two Python functions that run on real tensors:

    @register_augmented_forward(my_op)          # my_op: a Symbol, or a name like "ltorch.foo"
    def my_op_aug(x, w, *, scale=1.0):
        out = my_kernel(x, w, scale)
        return out, (x, w)                      # (the op's output, the residuals to save)

    @register_backward(my_op)
    def my_op_backward(x, w, grad_out):          # residuals, then one cotangent per output
        return grad_out @ w.T, x.T @ grad_out     # one gradient per tensor argument (None: none)

The augmented forward runs in the forward program, its residuals are saved for the backward, and the
backward runs in the backward program; both appear in the traces (`thunder_grad.my_op_*`). While
tracing, the residuals' shapes and dtypes come from running the augmented forward on meta tensors,
or from `residual_meta(*args, **kwargs)` when given (for kernels that cannot run on meta tensors).

Contract (also for executors: `register_implementation(..., grad_transform=(augmented_forward,
backward))` registers through this): the augmented forward returns exactly the op's outputs (same
structure, shapes and dtypes) and a sequence of tensors; the backward returns one entry per tensor
argument of the op, in order, a tensor of that argument's shape wherever the argument requires grad.
Registering again replaces the earlier rule.
"""

from __future__ import annotations

import torch

from thunder import _core

__all__ = ["register_augmented_forward", "register_backward", "register_grad", "torch_autograd_grad"]

_pending: dict[str, dict] = {}


def _symbol(sym_or_id):
    core = getattr(sym_or_id, "_core", sym_or_id)
    if isinstance(core, _core.Symbol):
        return core
    if isinstance(sym_or_id, str):
        module, _, name = sym_or_id.rpartition(".")
        found = _core.find_symbol(module or "ltorch", name)
        if found is None:
            raise ValueError(f"register_grad: unknown symbol '{sym_or_id}'")
        return found
    raise TypeError(f"register_grad: expected a symbol or a symbol name, got {type(sym_or_id).__name__}")


def _from_spec(spec):
    kind = spec[0]
    if kind == "tensor":
        _, shape, dtype, _device = spec
        return torch.empty(shape, dtype=dtype, device="meta")
    if kind == "seq":
        return [_from_spec(s) for s in spec[1]]
    if kind == "dict":
        return {k: _from_spec(s) for k, s in spec[1].items()}
    return spec[1]


def _bind(sym, values):
    """(args, kwargs) to call a Python function with the symbol's bound arguments (one per
    parameter, in signature order)."""
    args, kwargs, kw_only = [], {}, False
    values = iter(values)
    for p in (p.strip() for p in sym.signature.split(",")):
        if not p:
            continue
        if p == "*":
            kw_only = True
            continue
        v = next(values)
        name = p.split("=")[0].strip()
        if name.startswith("*"):
            args.extend(v)
            kw_only = True
        elif kw_only:
            kwargs[name] = v
        else:
            args.append(v)
    return args, kwargs


def register_grad(sym_or_id, *, augmented_forward, backward, residual_meta=None, _flat=False,
                  _forward_mask=False):
    """Gives the symbol `sym_or_id` a gradient made of two Python functions (see the module doc).
    (`_flat`: the backward takes a mask of the tensors that need a gradient first, and returns one
    gradient per tensor anywhere in the arguments, nested sequences and dicts included, in order;
    used for opaque torch functions. `_forward_mask`: the augmented forward of an opaque torch
    function takes (args, kwargs, requires_grad), the last per tensor in the same order.)"""
    sym = _symbol(sym_or_id)
    if not callable(augmented_forward) or not callable(backward):
        raise TypeError("register_grad: augmented_forward and backward must be callable")
    adapter = getattr(sym_or_id, "_adapter", None)  # a thunder.extend operator taking *args/**kwargs
    if adapter is not None:
        # Its tensors may sit in the packed *args tuple or **kwargs dict: the backward returns one
        # gradient per tensor in the order the user passed them, which is the flat order.
        augmented_forward = adapter.spread(augmented_forward)
        residual_meta = None if residual_meta is None else adapter.spread(residual_meta)
        user_backward = backward
        backward = lambda mask, *rest: user_backward(*rest)  # noqa: E731
        _flat = True

    def run_forward(*args, **kwargs):
        out = augmented_forward(*args, **kwargs)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"the augmented forward of {sym.qualname} must return (output, residuals)")
        return out[0], tuple(out[1])

    def run_backward(args):
        mask, rest = args[0], args[1:]
        grads = backward(mask, *rest) if _flat else backward(*rest)
        if isinstance(grads, torch.Tensor) or grads is None:
            grads = (grads,)
        grads = tuple(grads)
        if len(grads) != len(mask):
            raise ValueError(f"the backward of {sym.qualname} returned {len(grads)} gradients; the op "
                             f"has {len(mask)} tensor arguments")
        for i, (needed, g) in enumerate(zip(mask, grads)):
            if needed and g is None:
                raise ValueError(f"the backward of {sym.qualname} returned None for tensor argument {i},"
                                 " which requires grad")
        return grads

    def meta(spec):
        values = [_from_spec(s) for s in spec]
        args, kwargs = _bind(sym, values)
        if residual_meta is not None:
            residuals = residual_meta(*args, **kwargs)
        else:
            _, residuals = run_forward(*args, **kwargs)
        out = []
        for r in residuals:
            if not isinstance(r, torch.Tensor):
                raise TypeError(f"the residuals of {sym.qualname} must be tensors, got {type(r).__name__}")
            out.append((tuple(r.shape), r.dtype))
        return out

    _core.register_python_grad(sym, run_forward, run_backward, meta, _flat, _forward_mask)


def torch_autograd_grad(fn):
    """A gradient for an operator whose implementation `fn` is differentiable torch code: the
    augmented forward runs `fn` with torch's autograd recording, the backward asks torch.autograd for
    the gradients. Memory is eager's (torch keeps what `fn`'s operations save). Use as
    `register_grad(op, **torch_autograd_grad(fn))`."""

    def augmented_forward(*args, **kwargs):
        leaves = []

        def track(x):
            if isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex()):
                x = x.detach().requires_grad_(True)
                leaves.append(x)
                return x
            if isinstance(x, torch.Tensor):
                leaves.append(None)
            return x

        args = [track(a) for a in args]
        kwargs = {k: track(v) for k, v in kwargs.items()}
        with torch.enable_grad():
            out = fn(*args, **kwargs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        detached = tuple(o.detach() for o in outs)
        result = detached if isinstance(out, (tuple, list)) else detached[0]
        graph = _TorchGraph(outs, leaves)
        return result, (graph.handle(),)

    def backward(handle, *grads):
        return handle._thunder_torch_graph.grad(grads)

    def residual_meta(*args, **kwargs):
        return (torch.empty((0,), dtype=torch.int64, device="meta"),)

    return {"augmented_forward": augmented_forward, "backward": backward,
            "residual_meta": residual_meta}


class _TorchGraph:
    """The outputs (with their torch autograd graph) and inputs of one torch_autograd_grad forward.
    The residual the programs carry is an empty tensor holding it, so it lives exactly as long as
    torch.autograd keeps the saved tensors."""

    def __init__(self, outs, leaves):
        self.outs, self.leaves = outs, leaves

    def handle(self, device="cpu"):
        h = torch.empty((0,), dtype=torch.int64, device=device)
        h._thunder_torch_graph = self
        return h

    def grad(self, grads, needed=None):
        if needed is not None:  # leave out the inputs that need no gradient
            leaves = [x if (isinstance(x, torch.Tensor) and n) else None for x, n in zip(self.leaves, needed)]
            return _TorchGraph(self.outs, leaves).grad(grads)
        inputs = [x for x in self.leaves if isinstance(x, torch.Tensor)]
        pairs = [(o, g) for o, g in zip(self.outs, grads) if o.requires_grad]
        got = iter(torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                                       allow_unused=True, retain_graph=True)) if pairs else iter(
                                           [None] * len(inputs))
        return tuple(next(got) if isinstance(x, torch.Tensor) else None for x in self.leaves)


class _Again:
    """A tensor's place in a call's arguments after its first: no leaf of its own (its gradient is
    the first place's), and zeros where a gradient is needed there."""

    __slots__ = ("leaf",)

    def __init__(self, leaf):
        self.leaf = leaf


def _track(x, leaves, wanted=None, seen=None):
    """x with every floating-point or complex tensor (in nested tuples, lists and dicts) replaced by a
    detached copy that requires grad; appends, per tensor in order, that leaf or None. `wanted`: an
    iterator of flags, one per tensor in the same order; a tensor whose flag is false stays as it is
    (a buffer the function updates in place). A tensor passed again is the same leaf again (the
    function may test `query is key`, as multi_head_attention_forward does), its gradient reported
    once, at its first place (an _Again at the others)."""
    seen = {} if seen is None else seen
    if isinstance(x, torch.Tensor):
        wants = next(wanted, True) if wanted is not None else True
        if wants and (x.is_floating_point() or x.is_complex()):
            leaf = seen.get(id(x))
            if leaf is not None:
                leaves.append(_Again(leaf))
                return leaf
            leaf = seen[id(x)] = x.detach().requires_grad_(True)
            leaves.append(leaf)
            return leaf
        leaves.append(None)
        return x
    if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
        return type(x)(_track(i, leaves, wanted, seen) for i in x)
    if isinstance(x, dict):
        return {k: _track(v, leaves, wanted, seen) for k, v in x.items()}
    return x


def _count_tensors(x):
    """The tensors _track visits in x."""
    if isinstance(x, torch.Tensor):
        return 1
    if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
        return sum(_count_tensors(i) for i in x)
    if isinstance(x, dict):
        return sum(_count_tensors(v) for v in x.values())
    return 0


def _detach_outputs(x, outs):
    """x with its tensors (in nested tuples and lists) detached; appends the originals to `outs`."""
    if isinstance(x, torch.Tensor):
        outs.append(x)
        return x.detach()
    if isinstance(x, tuple):
        return tuple(_detach_outputs(i, outs) for i in x)
    if isinstance(x, list):
        return [_detach_outputs(i, outs) for i in x]
    return x


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    items = x.values() if isinstance(x, dict) else x if isinstance(x, (tuple, list)) else ()
    for i in items:
        t = _first_tensor(i)
        if t is not None:
            return t
    return None


def _opaque_torch_autograd(fn):
    """The gradient of an opaque torch function `fn` (called as fn(*args, **kwargs) with tensors
    anywhere in args and kwargs): the forward runs `fn` with torch's autograd recording, the backward
    asks torch.autograd for the gradients of the tensor occurrences that need one."""

    def augmented_forward(args, kwargs, requires_grad=None):
        leaves = []
        first = _first_tensor((args, kwargs))
        # The flags walk the tensors as the recording did; should the two walks disagree (a tensor
        # inside a named tuple), every tensor is tracked, as without flags.
        wanted = None
        if requires_grad is not None and len(requires_grad) == _count_tensors((args, kwargs)):
            wanted = iter(requires_grad)
        seen = {}
        args = _track(tuple(args), leaves, wanted, seen)
        kwargs = _track(dict(kwargs), leaves, wanted, seen)
        with torch.enable_grad():
            out = fn(*args, **kwargs)
        outs = []
        result = _detach_outputs(out, outs)
        handle = _TorchGraph(outs, leaves).handle(first.device if first is not None else "cpu")
        return result, (handle,)

    def backward(mask, handle, *grads):
        graph = handle._thunder_torch_graph
        got = graph.grad(grads, mask)
        # An input the outputs do not depend on gets zeros (eager adds nothing to it), as does a
        # tensor's place after its first.
        return tuple(torch.zeros_like(x.leaf if isinstance(x, _Again) else x) if g is None and n else g
                     for g, n, x in zip(got, mask, graph.leaves))

    def residual_meta(args, kwargs):
        return (torch.empty((0,), dtype=torch.int64, device="meta"),)

    return {"augmented_forward": augmented_forward, "backward": backward, "residual_meta": residual_meta}


def _missing_grad_hook(sym, fn, spec) -> bool:
    """Differentiation reached the opaque torch function `fn` (symbol `sym`, arguments described by
    `spec`), which has no rule: register one that runs `fn` under torch's autograd, or mark it
    non-differentiable when torch's autograd makes none of its outputs require grad (as eager
    would). In-place functions keep the error (their write into a tensor cannot be replayed on a
    detached copy)."""
    name = getattr(fn, "__name__", "")
    if sym.is_inplace or (name.endswith("_") and not name.endswith("__")):
        return False
    args, kwargs = (_from_spec(s) for s in spec)
    if not _differentiable_on_meta(fn, args, kwargs):
        _core.register_nondifferentiable(sym)
        return True
    register_grad(sym, **_opaque_torch_autograd(fn), _flat=True, _forward_mask=True)
    return True


def _differentiable_on_meta(fn, args, kwargs) -> bool:
    """Whether torch's autograd makes any output of fn(*args, **kwargs) (meta tensors) require grad
    when its floating-point inputs do."""
    try:
        with torch.enable_grad():
            out = fn(*_track(tuple(args), []), **_track(dict(kwargs), []))
    except Exception:  # no meta kernel with autograd: assume differentiable, torch decides at run time
        return True
    outs = []
    _detach_outputs(out, outs)
    return any(o.requires_grad for o in outs)


_core.set_missing_grad_hook(_missing_grad_hook)


def _decorator(sym_or_id, key):
    sym = _symbol(sym_or_id)

    def register(fn):
        entry = _pending.setdefault(sym.qualname, {})
        entry[key] = fn
        if "augmented_forward" in entry and "backward" in entry:
            register_grad(sym, augmented_forward=entry["augmented_forward"],
                          backward=entry["backward"], residual_meta=entry.get("residual_meta"))
        return fn

    return register


def register_augmented_forward(sym_or_id):
    """Decorator: the augmented forward of `sym_or_id` (returns (output, residuals))."""
    return _decorator(sym_or_id, "augmented_forward")


def register_backward(sym_or_id):
    """Decorator: the backward of `sym_or_id` (takes residuals then output cotangents, returns one
    gradient per tensor argument). Takes effect once both halves are registered."""
    return _decorator(sym_or_id, "backward")

