"""The torch executor: runs every torch-level symbol with the torch function it mirrors, and every
primitive with the torch implementation below (used when a program is decomposed to primitives)."""

from __future__ import annotations

import functools
import importlib
import numbers

import torch
import torch.nn.functional as F


def _is_tensor(x):
    return isinstance(x, torch.Tensor)


def _as_tensor_like(x, ref):
    return x if _is_tensor(x) else torch.tensor(x, dtype=ref.dtype, device=ref.device)


def _exact(a):
    return _is_tensor(a) and not (a.is_floating_point() or a.is_complex())


def div(a, b):
    ref = a if _is_tensor(a) else b
    if _exact(ref) and not isinstance(a if not _is_tensor(a) else b, float):
        return torch.div(a, b, rounding_mode="trunc")
    return torch.true_divide(a, b)


def maximum(a, b):
    ref = a if _is_tensor(a) else b
    return torch.maximum(_as_tensor_like(a, ref), _as_tensor_like(b, ref))


def minimum(a, b):
    ref = a if _is_tensor(a) else b
    return torch.minimum(_as_tensor_like(a, ref), _as_tensor_like(b, ref))


def atan2(a, b):
    ref = a if _is_tensor(a) else b
    return torch.atan2(_as_tensor_like(a, ref), _as_tensor_like(b, ref))


def fmod(a, b):
    if not _is_tensor(a):
        a = _as_tensor_like(a, b)
    return torch.fmod(a, b)


def remainder(a, b):
    return torch.remainder(a, b)


def convert_element_type(a, dtype):
    if not _is_tensor(a):
        return a
    # A conversion to the same dtype is recorded only to make a new tensor (clone, copy).
    return a.to(dtype) if a.dtype != dtype else a.clone()


def broadcast_in_dim(a, shape, broadcast_dimensions):
    lead = len(shape) - a.ndim
    if all(d == lead + i for i, d in enumerate(broadcast_dimensions)):
        return a.expand(tuple(shape))  # new leading dims only: torch's broadcasting
    view = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        view[d] = a.shape[i]
    return a.reshape(view).expand(tuple(shape))


def transpose(a, permutation):
    return torch.permute(a, tuple(permutation))


def _slice_plan(shape, start_indices, end_indices, strides):
    """How `slice` cuts a tensor of `shape`: ("narrow", dim, start, length) for one dim cut at unit
    step (a projection's q, k or v), torch's narrow, a call a third the cost of indexing by a tuple of
    slices; else ("index", the tuple of slices)."""
    cuts = [d for d, (s, e, n) in enumerate(zip(start_indices, end_indices, shape)) if s != 0 or e != n]
    if len(cuts) == 1 and (strides is None or all(st == 1 for st in strides)):
        d, s = cuts[0], start_indices[cuts[0]]
        return ("narrow", d, s, max(0, min(end_indices[d], shape[d]) - s))
    if strides is None:
        strides = [1] * len(shape)
    return ("index", tuple(builtins_slice(s, e, st) for s, e, st in zip(start_indices, end_indices, strides)))


# Plans by (shape, start_indices, end_indices, strides): a program calls each slice of its trace with
# the same arguments every time, and working the plan out took two thirds of the call (6.1 against
# 1.8 us for narrow alone on a 2-core CPU machine).
_cached_slice_plan = functools.lru_cache(maxsize=4096)(_slice_plan)


def slice(a, start_indices, end_indices, strides=None):  # noqa: A001 - the primitive's name
    try:
        plan = _cached_slice_plan(a.shape, start_indices, end_indices, strides)
    except TypeError:  # unhashable indices (lists): worked out each call
        plan = _slice_plan(a.shape, start_indices, end_indices, strides)
    if plan[0] == "narrow":
        return a.narrow(plan[1], plan[2], plan[3])
    return a[plan[1]]


builtins_slice = __builtins__["slice"] if isinstance(__builtins__, dict) else __builtins__.slice


def squeeze(a, dims):
    dims = tuple(dims)
    if not dims:
        return a
    return torch.squeeze(a, dims)


def pad(a, padding_value, padding_config):
    if all(c[2] == 0 for c in padding_config):
        flat = []
        for lo, hi, _ in reversed(padding_config):
            flat += [lo, hi]
        if a.ndim == 0:
            return a.clone()
        return F.pad(a, flat, mode="constant", value=padding_value)
    # Interior padding: scatter the input into a strided view of a filled tensor, then crop/pad edges.
    inner_shape = [n + max(n - 1, 0) * c[2] for n, c in zip(a.shape, padding_config)]
    out = torch.full(inner_shape, padding_value, dtype=a.dtype, device=a.device)
    idx = tuple(builtins_slice(None, None, c[2] + 1) for c in padding_config)
    out[idx] = a
    return pad(out, padding_value, [(lo, hi, 0) for lo, hi, _ in padding_config])


def cat(tensors, dim):
    return torch.cat(list(tensors), dim)


def flip(a, dims):
    return torch.flip(a, tuple(dims))


def unfold(a, dim, size, step):
    return a.unfold(dim, size, step)


def take(a, indices, dim):
    return torch.index_select(a, dim, indices.reshape(-1) if indices.ndim == 0 else indices)


def take_along_axis(a, indices, dim):
    return torch.gather(a, dim, indices)


def index_put(a, indices, values, accumulate):
    return torch.index_put(a, tuple(indices), values, accumulate)


def scatter_add(a, dim, index, src):
    return torch.scatter_add(a, dim, index, src)


def _reduce(fn, a, dims):
    dims = tuple(dims)
    if not dims:
        return a.clone()
    return fn(a, dims)


def sum(a, dims):  # noqa: A001
    # The primitive keeps the dtype (torch.sum would promote integers to int64).
    return _reduce(lambda t, d: torch.sum(t, d, dtype=t.dtype), a, dims)


def amax(a, dims):
    return _reduce(torch.amax, a, dims)


def amin(a, dims):
    return _reduce(torch.amin, a, dims)


def prod(a, dims):
    out = a
    for d in sorted(dims, reverse=True):
        out = torch.prod(out, d, dtype=out.dtype)
    return out if dims else a.clone()


def var(a, dims, *, correction):
    return torch.var(a, tuple(dims), correction=correction)


def argmax(a, dim):
    return torch.argmax(a, dim)


def argmin(a, dim):
    return torch.argmin(a, dim)


def full(shape, fill_value, *, device, dtype):
    return torch.full(tuple(shape), fill_value, device=device, dtype=dtype)


def iota(length, *, start, step, device, dtype):
    # Floating results are computed in float64, as torch.arange accumulates on the CPU.
    compute = torch.float64 if (dtype.is_floating_point or dtype.is_complex) else torch.int64
    return (torch.arange(length, device=device, dtype=compute) * step + start).to(dtype)


def uniform(shape, minval, maxval, *, device, dtype):
    return torch.empty(tuple(shape), device=device, dtype=dtype).uniform_(minval, maxval)


_M32 = 0xFFFFFFFF


def philox_state(*, device):
    """[seed, offset] for uniform_philox, taken from the device's torch generator (which advances)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        gen = torch.cuda.default_generators[index]
        if hasattr(gen, "get_offset"):
            # The slot of four numbers per element group that torch's next CUDA draw would use.
            offset = gen.get_offset()
            gen.set_offset(offset + 4)
            seed = gen.initial_seed() & 0xFFFFFFFFFFFFFFFF
            return torch.tensor([seed - (1 << 64) if seed >= 1 << 63 else seed, offset], dtype=torch.int64)
    # A fresh 63-bit key from the CPU generator (torch.manual_seed makes it reproducible).
    return torch.tensor([torch.empty((), dtype=torch.int64).random_().item(), 0], dtype=torch.int64)


def philox_uniform_values(shape, seed, offset, device):
    """The numbers uniform_philox defines: element i is word i % 4 of Philox4x32-10 with key
    (seed low, seed high) and counter (offset/4 low, offset/4 high, (i/4) low, (i/4) high), its top 24
    bits scaled to [0, 1). Fused kernels compute the same numbers."""
    n = 1
    for s in shape:
        n *= s
    g = torch.arange((n + 3) // 4, dtype=torch.int64, device=device)
    c0 = torch.full_like(g, (offset >> 2) & _M32)
    c1 = torch.full_like(g, (offset >> 34) & _M32)
    c2, c3 = g & _M32, (g >> 32) & _M32
    k0, k1 = seed & _M32, (seed >> 32) & _M32
    for _ in range(10):
        # 32x32 -> 64-bit products wrap in int64; the masks recover their high and low words.
        p0, p1 = c0 * 0xD2511F53, c2 * 0xCD9E8D57
        c0, c1, c2, c3 = ((p1 >> 32) & _M32) ^ c1 ^ k0, p1 & _M32, ((p0 >> 32) & _M32) ^ c3 ^ k1, p0 & _M32
        k0, k1 = (k0 + 0x9E3779B9) & _M32, (k1 + 0xBB67AE85) & _M32
    words = torch.stack([c0, c1, c2, c3], 1).reshape(-1)[:n]
    return ((words >> 8).to(torch.float32) * 2.0**-24).reshape(tuple(shape))


def uniform_philox(shape, state, *, device):
    seed, offset = (int(v) for v in state.tolist())
    return philox_uniform_values(shape, seed, offset, device)


def randn(shape, *, device, dtype):
    return torch.randn(tuple(shape), device=device, dtype=dtype)


def linear(a, w, bias):
    return F.linear(a, w, bias)


def convolution(a, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    return torch.convolution(
        a, weight, bias, list(stride), list(padding), list(dilation), transposed,
        list(output_padding), groups
    )


def set_grad_enabled(mode):
    torch._C._set_grad_enabled(mode)


def leaf_update(leaf, value):
    """A leaf's update without history: the value itself (the gradient rule routes it to the leaf)."""
    return value


def copy(input, src, non_blocking=False):
    """The value `input` holds after `input.copy_(src)`, as a new tensor."""
    out = torch.empty_like(input)
    out.copy_(src)
    return out


def copy_(copy_from, copy_to):
    if copy_to.requires_grad and torch.is_grad_enabled():
        # The write-back into an input that requires grad (a leaf updated under no_grad in the
        # function): its history is in the program, not in this copy.
        with torch.no_grad():
            copy_to.copy_(copy_from)
        return copy_to
    copy_to.copy_(copy_from)
    return copy_to


# Torch-level shape/indexing ops whose torch callable cannot take the bound arguments as they are.
def squeeze_op(input, dim=None):
    return torch.squeeze(input) if dim is None else torch.squeeze(input, dim)


def setitem(input, indices, values):
    """The value `input` holds after `input[indices] = values`, as a new tensor."""
    out = input.clone()
    out[indices] = values
    return out


def setitem_(input, indices, values):
    input[indices] = values
    return input


def scatter_op(input, dim, index, src, *, reduce=None):
    if reduce is None:
        return torch.scatter(input, dim, index, src)
    return torch.scatter(input, dim, index, src, reduce=reduce)


def scatter_op_(input, dim, index, src, *, reduce=None):
    if reduce is None:
        return input.scatter_(dim, index, src)
    return input.scatter_(dim, index, src, reduce=reduce)


# Primitives whose torch function of the same name takes the primitive's arguments.
_SAME_NAME = {
    "abs", "neg", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "sin",
    "cos", "tan", "tanh", "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh", "atanh", "erf",
    "erfc", "erfinv", "lgamma", "digamma", "reciprocal", "sign", "floor", "ceil", "round", "trunc",
    "bitwise_not", "isfinite", "signbit", "real", "imag", "add", "sub", "mul", "pow", "eq", "ne",
    "lt", "le", "gt", "ge", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
    "bitwise_right_shift", "where", "reshape", "matmul",
}


def resolve(path: str):
    """The object a dotted path names ("torch.nn.functional.softmax"), or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for p in parts[cut:]:
                obj = getattr(obj, p)
        except AttributeError:
            return None
        return obj
    return None


def prim_impl(name: str):
    """(module, name, callable) running the primitive `name`."""
    fn = globals().get(name)
    if callable(fn) and not isinstance(fn, type) and name not in _SAME_NAME:
        return "torchex", name, fn
    fn = getattr(torch, name, None)
    if fn is None:
        raise RuntimeError(f"no torch implementation of prims.{name}")
    return "torch", name, fn


def register(executor, symbols):
    """Registers every symbol torch can run on the torch executor."""
    for sym in symbols:
        if sym.is_prim:
            module, name, fn = prim_impl(sym.name)
        else:
            if not sym.torch_impl:
                continue
            fn = resolve(sym.torch_impl)
            if fn is None:
                continue
            module, _, name = sym.torch_impl.rpartition(".")
            if module.startswith("thunder.executors.torchex"):
                module = "torchex"
        executor._core.register_impl(sym, module, name, fn)


def is_number(x):
    return isinstance(x, numbers.Number)


# Torch-level ops whose torch function does not accept the bound arguments of their signature.


def pad_backward(grad_output, input, pad, mode):
    """Runs ltorch.pad_backward: ATen's backward of reflect or replicate padding over the last
    len(pad) // 2 dims."""
    kind = "reflection" if mode == "reflect" else "replication"
    return getattr(torch.ops.aten, f"{kind}_pad{len(pad) // 2}d_backward")(grad_output, input, list(pad))


def upsample_nearest_backward(grad_output, output_size, input_size, scales, exact):
    """Runs ltorch.upsample_nearest_backward: ATen's backward of nearest (or nearest-exact)
    interpolation over len(output_size) spatial dims; `scales` the forward's scale factors, or None."""
    n = len(output_size)
    name = f"_upsample_nearest_exact{n}d_backward" if exact else f"upsample_nearest{n}d_backward"
    return getattr(torch.ops.aten, name)(grad_output, output_size, input_size, *(scales or (None,) * n))


def native_group_norm(input, weight, bias, N, C, HxW, group, eps):
    """ATen's native_group_norm with its mean and rstd in the compute dtype (float32, float64 for a
    float64 input) as thunder's decomposition gives them. ATen gives them in the input's dtype (or
    float32 beside float32 parameters), rounded: for a bf16 or fp16 input they are computed here in
    float32, so that a backward computing the output again from them gets the forward's."""
    out, mean, rstd = torch.ops.aten.native_group_norm(input, weight, bias, N, C, HxW, group, eps)
    if input.dtype in (torch.bfloat16, torch.float16):
        var, mean = torch.var_mean(input.reshape(N, group, -1).float(), dim=-1, correction=0)
        return out, mean, (var + eps).rsqrt()
    return out, mean, rstd


def _aten_norm_stat_dtype(input, weight, accumulate_on_cuda):
    """The dtype ATen's norm backward kernels read saved statistics in: float32 for a bf16 or fp16 input
    beside a float32 weight (or on CUDA, where `accumulate_on_cuda`), else the input's."""
    reduced = input.dtype in (torch.bfloat16, torch.float16)
    mixed = reduced and weight is not None and weight.dtype == torch.float32
    return torch.float32 if mixed or (reduced and accumulate_on_cuda and input.is_cuda) else input.dtype


def native_group_norm_backward(grad_out, input, mean, rstd, weight, N, C, HxW, group, output_mask):
    """ATen's native_group_norm_backward, the statistics in the dtype its kernel reads them in and the
    tensors contiguous, as eager's autograd passes them."""
    stat = _aten_norm_stat_dtype(input, weight, accumulate_on_cuda=False)
    return torch.ops.aten.native_group_norm_backward(
        grad_out.contiguous(), input.contiguous(), mean.to(stat), rstd.to(stat), weight, N, C, HxW, group,
        list(output_mask))


def native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps):
    """ATen's native_batch_norm with its saved mean and invstd in the compute dtype (float32, float64
    for a float64 input), as thunder's decomposition gives them (ATen's CPU kernel gives a bf16
    input's in bf16)."""
    out, mean, invstd = torch.ops.aten.native_batch_norm(input, weight, bias, running_mean, running_var,
                                                         training, momentum, eps)
    compute = torch.float64 if input.dtype == torch.float64 else torch.float32
    return out, mean.to(compute), invstd.to(compute)


def native_batch_norm_backward(grad_out, input, weight, running_mean, running_var, save_mean, save_invstd,
                               train, eps, output_mask):
    """ATen's native_batch_norm_backward, the saved statistics in the dtype its kernel reads them in."""
    stat = _aten_norm_stat_dtype(input, weight, accumulate_on_cuda=True)
    return torch.ops.aten.native_batch_norm_backward(
        grad_out, input, weight, running_mean, running_var, save_mean.to(stat), save_invstd.to(stat), train,
        eps, list(output_mask))


def ltorch_prod(input, dim=None, keepdim=False, *, dtype=None):
    if dim is None:
        return torch.prod(input, dtype=dtype)
    return torch.prod(input, dim, keepdim, dtype=dtype)


def ltorch_max(input, dim=None, keepdim=False):
    if dim is None:
        return torch.max(input)
    if _is_tensor(dim):
        return torch.max(input, dim)
    return tuple(torch.max(input, dim, keepdim))


def ltorch_min(input, dim=None, keepdim=False):
    if dim is None:
        return torch.min(input)
    if _is_tensor(dim):
        return torch.min(input, dim)
    return tuple(torch.min(input, dim, keepdim))


def _var_kwargs(dim, unbiased, keepdim, correction):
    """var/std keywords from thunder's merged signature (a bool in dim's place is `unbiased`)."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return {"dim": dim, "correction": correction, "keepdim": keepdim}


def ltorch_var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return torch.var(input, **_var_kwargs(dim, unbiased, keepdim, correction))


def ltorch_std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return torch.std(input, **_var_kwargs(dim, unbiased, keepdim, correction))


def ltorch_var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return tuple(torch.var_mean(input, **_var_kwargs(dim, unbiased, keepdim, correction)))


def ltorch_std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return tuple(torch.std_mean(input, **_var_kwargs(dim, unbiased, keepdim, correction)))


def ltorch_arange(start=0, end=None, step=1, *, dtype=None, layout=None, device=None,
                  requires_grad=False, pin_memory=False):
    if end is None:
        start, end = 0, start
    return torch.arange(start, end, step, dtype=dtype, layout=layout, device=device,
                        requires_grad=requires_grad, pin_memory=pin_memory)


def ltorch_eye(n, m=None, *, dtype=None, layout=None, device=None, requires_grad=False,
               pin_memory=False):
    return torch.eye(n, n if m is None else m, dtype=dtype, layout=layout, device=device,
                     requires_grad=requires_grad, pin_memory=pin_memory)


def ltorch_randint(low, high=None, size=None, *, generator=None, dtype=None, layout=None,
                   device=None, requires_grad=False, pin_memory=False):
    if size is None:
        low, high, size = 0, low, high
    return torch.randint(low, high, size, generator=generator, dtype=dtype, layout=layout,
                         device=device, requires_grad=requires_grad, pin_memory=pin_memory)


def ltorch_to(input, dtype_or_device=None, dtype=None, non_blocking=False, copy=False, *,
              device=None, memory_format=None):
    """Tensor.to from thunder's merged signature: after a dtype or a tensor, the positionals are
    (non_blocking, copy)."""
    first = dtype_or_device
    if isinstance(first, (torch.dtype, torch.Tensor)):
        if isinstance(dtype, bool):
            non_blocking, copy = dtype, non_blocking or copy
        if _is_tensor(first):
            dtype, device = first.dtype, first.device
        else:
            dtype = first
    elif first is not None:
        device = first
    kwargs = {"device": device, "dtype": dtype, "non_blocking": non_blocking, "copy": copy}
    if memory_format is not None:
        kwargs["memory_format"] = memory_format
    return input.to(**kwargs)


def convert_tensors(tensors, dtype):
    """Runs ltorch.convert_tensors: each tensor converted to `dtype` (its layout kept) by one
    multi-tensor copy instead of one kernel per tensor."""
    outs = [torch.empty_like(t, dtype=dtype) for t in tensors]
    torch._foreach_copy_(outs, list(tensors))
    return tuple(outs)
