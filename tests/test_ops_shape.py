"""Shape, layout and indexing ops against eager PyTorch: each sample runs through thunder.jit as captured
(torch-level ops) and decomposed to primitives, and its final trace must print as valid Python."""

import ast

import pytest
import torch
from torch.testing import assert_close

import thunder


def _t(*shape, dtype=torch.float32):
    n = 1
    for s in shape:
        n *= s
    if dtype == torch.bool:
        return (torch.arange(n) % 3 == 0).reshape(shape)
    return torch.arange(n, dtype=torch.float64).reshape(shape).to(dtype) - n // 3


def _nc(*shape, dtype=torch.float32):
    """A non-contiguous (transposed) tensor of the given shape."""
    return _t(*reversed(shape), dtype=dtype).permute(*reversed(range(len(shape))))


def _exp(*shape, dtype=torch.float32):
    """An expanded tensor (stride 0 in the first dim)."""
    return _t(1, *shape[1:], dtype=dtype).expand(*shape)


IDX = torch.tensor([2, 0, -1])


def _clone(args):
    return [a.clone() if isinstance(a, torch.Tensor) else a for a in args]


# (id, fn, args)
CASES = [
    # view / reshape
    ("view", lambda x: x.view(2, 3), [_t(6)]),
    ("view_tuple_infer", lambda x: x.view((-1, 2)), [_t(2, 3)]),
    ("view_0d", lambda x: x.view(1, 1), [_t()]),
    ("view_empty", lambda x: x.view(0, 5), [_t(5, 0)]),
    ("reshape_fn", lambda x: torch.reshape(x, (3, -1)), [_nc(2, 3)]),
    ("reshape_method", lambda x: x.reshape(-1), [_exp(2, 3)]),
    ("reshape_kw", lambda x: torch.reshape(x, shape=(6,)), [_t(2, 3)]),
    ("reshape_noop", lambda x: x.reshape(2, 3) + 1, [_t(2, 3)]),
    ("reshape_bf16", lambda x: x.reshape(3, 2), [_t(6, dtype=torch.bfloat16)]),
    ("view_as", lambda x, y: x.view_as(y), [_t(6), _t(3, 2)]),
    ("reshape_as", lambda x, y: x.reshape_as(y), [_nc(2, 3), _t(3, 2)]),
    ("flatten", lambda x: x.flatten(), [_nc(2, 3, 4)]),
    ("flatten_range", lambda x: torch.flatten(x, 1, -1), [_t(2, 3, 4)]),
    ("flatten_kw", lambda x: x.flatten(start_dim=0, end_dim=1), [_t(2, 3, 4, dtype=torch.int64)]),
    ("flatten_0d", lambda x: x.flatten(), [_t()]),
    ("unflatten", lambda x: x.unflatten(1, (2, -1)), [_t(3, 4)]),
    ("unflatten_fn", lambda x: torch.unflatten(x, -1, (2, 2)), [_t(3, 4, dtype=torch.bool)]),
    ("unsqueeze", lambda x: x.unsqueeze(-1), [_t(2, 3)]),
    ("unsqueeze_0d", lambda x: torch.unsqueeze(x, 0), [_t()]),
    ("squeeze_all", lambda x: x.squeeze(), [_t(1, 2, 1)]),
    ("squeeze_dim", lambda x: torch.squeeze(x, 0), [_t(1, 2, 1)]),
    ("squeeze_dim_not1", lambda x: x.squeeze(1), [_t(1, 2, 1)]),
    ("squeeze_tuple", lambda x: x.squeeze((0, 2)), [_t(1, 2, 1)]),
    ("squeeze_0d", lambda x: x.squeeze(), [_t()]),
    ("contiguous", lambda x: x.contiguous() * 2, [_nc(2, 3)]),
    # permutations
    ("permute", lambda x: x.permute(2, 0, 1), [_t(2, 3, 4)]),
    ("permute_fn", lambda x: torch.permute(x, (-1, 0, 1)), [_nc(2, 3, 4, dtype=torch.int64)]),
    ("transpose", lambda x: x.transpose(0, 1), [_t(2, 3)]),
    ("transpose_neg", lambda x: torch.transpose(x, -1, -3), [_t(2, 3, 4)]),
    ("swapaxes", lambda x: torch.swapaxes(x, 0, 2), [_t(2, 3, 4)]),
    ("swapdims", lambda x: x.swapdims(0, 1), [_t(2, 3)]),
    ("t_2d", lambda x: x.t(), [_t(2, 3)]),
    ("t_1d", lambda x: torch.t(x) + 0, [_t(3)]),
    ("movedim", lambda x: torch.movedim(x, 0, -1), [_t(2, 3, 4)]),
    ("movedim_tuple", lambda x: x.movedim((0, 1), (2, 0)), [_t(2, 3, 4)]),
    ("moveaxis", lambda x: torch.moveaxis(x, -1, 0), [_t(2, 3, 4)]),
    # expand / repeat
    ("expand", lambda x: x.expand(2, 3, 4), [_t(3, 1)]),
    ("expand_keep", lambda x: x.expand(-1, 4), [_t(3, 1)]),
    ("expand_tuple", lambda x: x.expand((2, 3)), [_t()]),
    ("expand_as", lambda x, y: x.expand_as(y), [_t(3, 1), _t(2, 3, 4)]),
    ("broadcast_to", lambda x: torch.broadcast_to(x, (2, 3)), [_t(3, dtype=torch.bool)]),
    ("repeat", lambda x: x.repeat(2, 3), [_t(2, 3)]),
    ("repeat_more_dims", lambda x: x.repeat(2, 1, 3), [_nc(2, 3)]),
    ("repeat_0d", lambda x: x.repeat(3), [_t()]),
    ("repeat_zero", lambda x: x.repeat(0, 2), [_t(2, 3)]),
    ("tile", lambda x: torch.tile(x, (2,)), [_t(2, 3)]),
    ("tile_more_dims", lambda x: torch.tile(x, (2, 1, 3)), [_nc(2, 3)]),
    ("tile_varargs", lambda x: x.tile(2, 2), [_t(2, 3)]),
    ("tile_empty_dims", lambda x: torch.tile(x, ()), [_t(2, 3)]),
    ("tile_0d", lambda x: torch.tile(x, (3,)), [_t()]),
    ("outer", torch.outer, [_t(3), _t(4)]),
    ("outer_ger_ints", torch.ger, [_t(3, dtype=torch.int64), _t(2, dtype=torch.int64)]),
    ("outer_mixed", lambda x, y: x.outer(y), [_t(3, dtype=torch.int64), _t(2)]),
    ("repeat_interleave", lambda x: x.repeat_interleave(2), [_t(2, 3)]),
    ("repeat_interleave_dim", lambda x: torch.repeat_interleave(x, 3, dim=1), [_t(2, 3)]),
    ("repeat_interleave_neg", lambda x: torch.repeat_interleave(x, 2, -2), [_t(2, 3, dtype=torch.int64)]),
    # sub-tensors
    ("narrow", lambda x: x.narrow(1, 1, 2), [_t(2, 4)]),
    ("narrow_neg", lambda x: torch.narrow(x, -1, -3, 2), [_t(2, 4)]),
    ("select", lambda x: x.select(1, -1), [_t(2, 3)]),
    ("select_fn", lambda x: torch.select(x, 0, 1), [_nc(2, 3)]),
    ("unfold", lambda x: x.unfold(1, 2, 1), [_t(2, 5)]),
    ("split_int", lambda x: x.split(2), [_t(5, 3)]),
    ("split_sizes", lambda x: torch.split(x, [1, 2], dim=1), [_t(2, 3)]),
    ("split_empty", lambda x: torch.split(x, 2), [_t(0)]),
    ("chunk", lambda x: x.chunk(3), [_t(5)]),
    ("chunk_dim", lambda x: torch.chunk(x, 4, dim=1), [_t(2, 6)]),
    ("chunk_empty", lambda x: torch.chunk(x, 3), [_t(0)]),
    ("unbind", lambda x: x.unbind(), [_t(3, 2)]),
    ("unbind_dim", lambda x: torch.unbind(x, dim=1), [_t(3, 2)]),
    ("iter", lambda x: [r * 2 for r in x], [_t(3, 2)]),
    ("tensor_split_int", lambda x: torch.tensor_split(x, 3), [_t(7)]),
    ("tensor_split_idx", lambda x: x.tensor_split([1, 5, 3, 9]), [_t(7)]),
    ("tensor_split_neg", lambda x: torch.tensor_split(x, [-2], dim=1), [_t(2, 7)]),
    # joins
    ("cat", lambda x, y: torch.cat([x, y]), [_t(2, 3), _t(1, 3)]),
    ("cat_dim", lambda x, y: torch.cat((x, y), dim=-1), [_t(2, 3), _nc(2, 2)]),
    ("cat_promote", lambda x, y: torch.cat([x, y]), [_t(2, 3, dtype=torch.int64), _t(1, 3)]),
    ("cat_legacy_empty", lambda x, y: torch.cat([x, y]), [_t(2, 3), _t(0)]),
    ("cat_single", lambda x: torch.cat([x]), [_t(2, 3)]),
    ("concat", lambda x, y: torch.concat([x, y], 1), [_t(2, 3), _t(2, 1)]),
    ("concatenate", lambda x, y: torch.concatenate([x, y], axis=1), [_t(2, 3), _t(2, 1)]),
    ("stack", lambda x, y: torch.stack([x, y]), [_t(2, 3), _nc(2, 3)]),
    ("stack_dim", lambda x, y: torch.stack((x, y), dim=-1), [_t(2, 3), _t(2, 3)]),
    ("stack_0d", lambda x, y: torch.stack([x, y]), [_t(), _t()]),
    ("stack_bool", lambda x, y: torch.stack([x, y], 1), [_t(3, dtype=torch.bool), _t(3, dtype=torch.bool)]),
    ("hstack", lambda x, y: torch.hstack([x, y]), [_t(2), _t(3)]),
    ("hstack_2d", lambda x, y: torch.hstack([x, y]), [_t(2, 2), _t(2, 3)]),
    ("vstack", lambda x, y: torch.vstack([x, y]), [_t(3), _t(2, 3)]),
    # reorderings and masks
    ("flip", lambda x: x.flip(0, 1), [_t(2, 3)]),
    ("flip_fn", lambda x: torch.flip(x, (-1,)), [_nc(2, 3, dtype=torch.int64)]),
    ("flip_kw", lambda x: torch.flip(x, dims=[0]), [_t(4)]),
    ("fliplr", lambda x: torch.fliplr(x), [_t(2, 3)]),
    ("flipud", lambda x: x.flipud(), [_t(2, 3)]),
    ("roll", lambda x: torch.roll(x, 1), [_t(2, 3)]),
    ("roll_dims", lambda x: x.roll((1, -1), (0, 1)), [_t(2, 3)]),
    ("roll_big", lambda x: torch.roll(x, 7, 1), [_t(2, 3, dtype=torch.bfloat16)]),
    ("tril", lambda x: x.tril(), [_t(3, 4)]),
    ("tril_diag", lambda x: torch.tril(x, -1), [_t(2, 3, 4)]),
    ("triu", lambda x: torch.triu(x, 1), [_t(4, 3)]),
    ("triu_bool", lambda x: x.triu(), [_t(3, 3, dtype=torch.bool)]),
    ("tril_causal", lambda x: torch.ones(x.shape[-1], x.shape[-1], dtype=torch.bool).tril(), [_t(4)]),
    # getitem
    ("getitem_int", lambda x: x[1], [_t(3, 4)]),
    ("getitem_neg_int", lambda x: x[-1, -2], [_t(3, 4)]),
    ("getitem_slice", lambda x: x[1:], [_t(3, 4)]),
    ("getitem_slice_step", lambda x: x[::2, 1::2], [_t(5, 4)]),
    ("getitem_slice_neg", lambda x: x[-3:-1, :-1], [_t(5, 4)]),
    ("getitem_slice_clamp", lambda x: x[-10:10, 5:], [_t(5, 4)]),
    ("getitem_slice_empty", lambda x: x[3:1], [_t(5, 4)]),
    ("getitem_none", lambda x: x[None, :, None], [_t(3, 4)]),
    ("getitem_ellipsis", lambda x: x[..., 1], [_t(2, 3, 4)]),
    ("getitem_ellipsis_none", lambda x: x[..., None, 0:2], [_t(2, 3, 4)]),
    ("getitem_0d", lambda x: x[None], [_t()]),
    ("getitem_0d_ellipsis", lambda x: x[...], [_t()]),
    ("getitem_bool_true", lambda x: x[True], [_t(2)]),
    ("getitem_nc", lambda x: x[1:, 0], [_nc(3, 4)]),
    ("getitem_expanded", lambda x: x[:, 1:3], [_exp(3, 4)]),
    ("getitem_tensor", lambda x, i: x[i], [_t(4, 3), IDX]),
    ("getitem_tensor_2d", lambda x, i: x[:, i], [_t(3, 4), torch.tensor([[0, 1], [2, -1]])]),
    ("getitem_tensor_0d", lambda x, i: x[i], [_t(4, 3), torch.tensor(1)]),
    ("getitem_list", lambda x: x[[0, 2, 1]], [_t(4, 3)]),
    ("getitem_list_range", lambda x: x[:, [0, 1]], [_t(4, 3)]),
    ("getitem_bool_list", lambda x: x[[True, False, True, False]], [_t(4, 3)]),
    ("getitem_two_adjacent", lambda x, i, j: x[:, i, j], [_t(2, 3, 4), IDX, torch.tensor([0])]),
    ("getitem_two_separated", lambda x, i, j: x[i, :, j], [_t(3, 3, 4), IDX, torch.tensor([0, 1, 3])]),
    ("getitem_int_and_list", lambda x: x[0, :, [0, 1]], [_t(2, 3, 4)]),
    ("getitem_none_between", lambda x: x[None, [0, 1], None, [1, 2]], [_t(2, 3, 4)]),
    ("getitem_int32_index", lambda x, i: x[i], [_t(4), torch.tensor([3, 1], dtype=torch.int32)]),
    ("getitem_empty_index", lambda x, i: x[i], [_t(4, 2), torch.zeros(0, dtype=torch.int64)]),
    ("getitem_bf16", lambda x: x[1:, ::2], [_t(3, 4, dtype=torch.bfloat16)]),
    # masked_fill
    ("masked_fill", lambda x, m: x.masked_fill(m, -1.5), [_t(2, 3), _t(2, 3, dtype=torch.bool)]),
    ("masked_fill_bcast", lambda x, m: torch.masked_fill(x, m, 2), [_t(3), _t(2, 3, dtype=torch.bool)]),
    ("masked_fill_tensor", lambda x, m, v: x.masked_fill(m, v), [_t(2, 3), _t(3, dtype=torch.bool), torch.tensor(7.0)]),
    ("masked_fill_int", lambda x, m: x.masked_fill(m, 1.5), [_t(2, 3, dtype=torch.int64), _t(2, 3, dtype=torch.bool)]),
    ("masked_fill_causal", lambda x: x.masked_fill(torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf")), [_t(2, 3, 3)]),
    # gather / scatter
    ("index_select", lambda x, i: x.index_select(0, i), [_t(4, 3), torch.tensor([2, 0, 3])]),
    ("index_select_fn", lambda x, i: torch.index_select(x, -1, i), [_nc(4, 3), torch.tensor([2, 0])]),
    ("index_select_0d", lambda x, i: torch.index_select(x, 1, i), [_t(4, 3), torch.tensor(1)]),
    ("gather", lambda x, i: torch.gather(x, 1, i), [_t(3, 4), torch.tensor([[0, 1], [3, 3], [2, 0]])]),
    ("gather_smaller", lambda x, i: x.gather(0, i), [_t(3, 4), torch.tensor([[0, 1], [2, 0]])]),
    ("scatter_add", lambda x, i, s: x.scatter_add(0, i, s), [_t(3, 2), torch.tensor([[0, 1], [0, 2]]), _t(2, 2)]),
    ("scatter_add_fn", lambda x, i, s: torch.scatter_add(x, 1, i, s), [_t(2, 4), torch.tensor([[0, 0]]), _t(3, 3)]),
    ("scatter", lambda x, i, s: torch.scatter(x, 1, i, s), [_t(2, 4), torch.tensor([[3, 0], [1, 2]]), _t(2, 3)]),
    ("scatter_value", lambda x, i: x.scatter(0, i, 9.0), [_t(3, 2), torch.tensor([[2, 0]])]),
    ("index_put", lambda x, i, v: torch.index_put(x, (i,), v), [_t(4, 2), torch.tensor([3, 0]), _t(2, 2)]),
    ("index_put_acc", lambda x, i, v: x.index_put((i,), v, accumulate=True), [_t(4), torch.tensor([1, 1, 2]), _t(3)]),
    ("index_put_bcast", lambda x, i, j, v: x.index_put((i, j), v), [_t(3, 4), torch.tensor([0, 2]), torch.tensor([1]), torch.tensor(5.0)]),
    ("take_along_dim", lambda x, i: torch.take_along_dim(x, i, 1), [_t(3, 4), torch.tensor([[0], [3], [1]])]),
    ("take_along_dim_bcast", lambda x, i: x.take_along_dim(i, dim=0), [_t(3, 4), torch.tensor([[2], [0]])]),
    ("take_along_dim_flat", lambda x, i: torch.take_along_dim(x, i), [_t(3, 4), torch.tensor([11, 0])]),
]


def _run(fn, args, decompose):
    expected = fn(*_clone(args))
    jfn = thunder.jit(fn, decompose_to_prims=decompose)
    actual = jfn(*_clone(args))
    assert_close(actual, expected, equal_nan=True)
    ast.parse(str(thunder.last_traces(jfn)[-1]))
    return jfn


@pytest.mark.parametrize("decompose", [False, True], ids=["torch", "prims"])
@pytest.mark.parametrize("fn,args", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_op_matches_eager(fn, args, decompose):
    _run(fn, args, decompose)


def _setitem(index, value_fn=None):
    def fn(x, *rest):
        v = value_fn(*rest) if value_fn else rest[0]
        x[index] = v
        return x * 1

    return fn


# (id, fn, args): fn mutates its first argument in place and returns a value.
INPLACE_CASES = [
    ("setitem_int", _setitem(1), [_t(3, 4), 5.0]),
    ("setitem_slice_tensor", _setitem((slice(None), slice(1, 3))), [_t(3, 4), _t(3, 2)]),
    ("setitem_step", _setitem((slice(None, None, 2), slice(1, None, 2))), [_t(5, 4), _t(2)]),
    ("setitem_neg", _setitem((slice(-2, None), -1)), [_t(5, 4), _t(1, 2)]),
    ("setitem_none_ellipsis", _setitem((None, Ellipsis, 0)), [_t(2, 3), _t(2)]),
    ("setitem_empty", _setitem(slice(3, 1)), [_t(4, 2), 1.0]),
    ("setitem_all", _setitem(Ellipsis), [_t(2, 3), _t(3)]),
    ("setitem_0d", _setitem(Ellipsis), [_t(), 3.0]),
    ("setitem_dtype", _setitem(0), [_t(2, 3, dtype=torch.int64), _t(3)]),
    ("setitem_bool", _setitem(slice(0, 2)), [_t(3, 2, dtype=torch.bool), True]),
    ("setitem_index_tensor", _setitem(torch.tensor([0, 2])), [_t(3, 4), _t(2, 4)]),
    ("setitem_list", _setitem((slice(None), [0, -1])), [_t(3, 4), -7.0]),
    ("setitem_two_adv", _setitem((torch.tensor([0, 2]), slice(None), torch.tensor([1, 3]))), [_t(3, 2, 4), _t(2, 2)]),
    ("setitem_int_adv", _setitem((0, slice(None), [0, 1])), [_t(2, 3, 4), _t(2)]),
]


def _masked_fill_(x, m):
    x.masked_fill_(m, 0.5)
    return x + 0


def _scatter_add_(x, i, s):
    x.scatter_add_(0, i, s)
    return x + 0


def _index_put_(x, i, v):
    x.index_put_((i,), v)
    return x + 0


def _tril_(x):
    x.tril_()
    return x + 0


INPLACE_CASES += [
    ("masked_fill_", _masked_fill_, [_t(2, 3), _t(2, 3, dtype=torch.bool)]),
    ("masked_fill_bcast_mask", _masked_fill_, [_t(2, 3), _t(3, dtype=torch.bool)]),
    ("scatter_add_", _scatter_add_, [_t(3, 2), torch.tensor([[0, 1], [0, 2]]), _t(2, 2)]),
    ("index_put_", _index_put_, [_t(4, 2), torch.tensor([3, 0]), _t(2, 2)]),
    ("tril_", _tril_, [_t(3, 3)]),
]


@pytest.mark.parametrize("decompose", [False, True], ids=["torch", "prims"])
@pytest.mark.parametrize("fn,args", [c[1:] for c in INPLACE_CASES], ids=[c[0] for c in INPLACE_CASES])
def test_inplace_matches_eager(fn, args, decompose):
    eager_args = _clone(args)
    expected = fn(*eager_args)
    jfn = thunder.jit(fn, decompose_to_prims=decompose)
    jit_args = _clone(args)
    actual = jfn(*jit_args)
    assert_close(actual, expected)
    assert_close(jit_args[0], eager_args[0])
    ast.parse(str(thunder.last_traces(jfn)[-1]))


def test_getitem_bool_mask_is_data_dependent():
    with pytest.raises(NotImplementedError, match="data-dependent"):
        thunder.jit(lambda x, m: x[m])(_t(2, 3), _t(2, 3, dtype=torch.bool))


@pytest.mark.parametrize(
    "fn,args,exc,match",
    [
        (lambda x: x.view(4, -1), [_t(6)], RuntimeError, "invalid for input of size 6"),
        (lambda x: x.view(-1, -1), [_t(6)], RuntimeError, "only one dimension can be inferred"),
        (lambda x: x.permute(0), [_t(2, 3)], RuntimeError, "number of dimensions"),
        (lambda x: x.t(), [_t(2, 3, 4)], RuntimeError, "<= 2 dimensions"),
        (lambda x: x.expand(3), [_t(2, 3)], RuntimeError, "number of sizes provided"),
        (lambda x: x.expand(2, 4), [_t(2, 3)], RuntimeError, "must match the existing size"),
        (lambda x: x.select(0, 5), [_t(2, 3)], IndexError, "out of range"),
        (lambda x: x[5], [_t(2, 3)], IndexError, "out of bounds"),
        (lambda x: x[0, 0, 0], [_t(2, 3)], IndexError, "too many indices"),
        (lambda x: x[::-1], [_t(2, 3)], ValueError, "step must be greater than zero"),
        (lambda x: x.transpose(0, 2), [_t(2, 3)], IndexError, "Dimension out of range"),
        (lambda x, y: torch.cat([x, y]), [_t(2, 3), _t(2, 2)], RuntimeError, "Sizes of tensors must match"),
        (lambda x, y: torch.stack([x, y]), [_t(2), _t(3)], RuntimeError, "stack expects each tensor"),
        (lambda x: torch.split(x, [1, 1]), [_t(3)], RuntimeError, "split_with_sizes"),
        (lambda x: x.masked_fill(x, 1.0), [_t(3)], RuntimeError, "boolean masks"),
        (lambda x: x.chunk(0), [_t(3)], RuntimeError, "greater than 0"),
        (lambda x: x.tril(), [_t(3)], RuntimeError, "at least 2 dimensions"),
        (lambda x: torch.tile(x, (-1,)), [_t(2, 3)], RuntimeError, "negative dimension"),
        (lambda x, y: torch.outer(x, y), [_t(2, 3), _t(3)], RuntimeError, "Expected 1-D argument self, but got 2-D"),
        (lambda x, y: torch.outer(x, y), [_t(3), _t(1, 3)], RuntimeError, "Expected 1-D argument vec2, but got 2-D"),
    ],
)
def test_errors_like_eager(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        fn(*_clone(args))
    with pytest.raises(Exception, match=match):
        thunder.jit(fn)(*_clone(args))


DTYPES = [torch.float32, torch.float64, torch.int64, torch.bool, torch.bfloat16]

DTYPE_SWEEP = [
    ("view_size", lambda x, y: x.view(y.shape)),
    ("getitem_mixed", lambda x, y: x[1:, None, [0, 2]]),
    ("cat_stack", lambda x, y: torch.cat([x, torch.stack([y[0], y[1]], dim=1)], dim=1)),
    ("flip_roll", lambda x, y: torch.roll(x.flip(0), 1, 1)),
    ("repeat_expand", lambda x, y: x[:, :1].expand(3, 4).repeat(1, 2)),
    ("tril_triu", lambda x, y: torch.tril(x, 1) + torch.triu(y.t(), 2) if x.dtype != torch.bool else torch.tril(x, 1) | torch.triu(y.t(), 2)),
    ("split_transpose", lambda x, y: [s.transpose(0, 1) for s in x.split([1, 3], 1)]),
    ("index_select_gather", lambda x, y: torch.gather(x.index_select(1, torch.tensor([2, 0])), 0, torch.tensor([[1, 0]]))),
]


def _setitem_sweep(x, y):
    x[1:, [0, 2]] = y[0, :2]
    x[0] = y[:, 1]
    return x


@pytest.mark.parametrize("decompose", [False, True], ids=["torch", "prims"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fn", [c[1] for c in DTYPE_SWEEP] + [_setitem_sweep],
                         ids=[c[0] for c in DTYPE_SWEEP] + ["setitem"])
def test_dtypes_match_eager(fn, dtype, decompose):
    args = [_t(3, 4, dtype=dtype), _nc(4, 3, dtype=dtype)]
    _run(fn, args, decompose)
    if fn is _setitem_sweep:
        eager, jitted = _clone(args), _clone(args)
        fn(*eager)
        thunder.jit(fn, decompose_to_prims=decompose)(*jitted)
        assert_close(jitted[0], eager[0])


@pytest.mark.parametrize("fmt", [None, torch.contiguous_format, torch.channels_last])
def test_contiguous_memory_format_keyword(fmt):
    def f(x):
        y = x.permute(0, 3, 1, 2)
        return (y.contiguous() if fmt is None else y.contiguous(memory_format=fmt)) * 2

    x = torch.randn(2, 3, 4, 5)
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(x), f(x))


def test_torch_executor_slice_matches_indexing_whatever_the_arguments():
    # torchex.slice keeps its plan per (shape, indices, strides): the same indices on other shapes,
    # ends past the dim (clamped), empty cuts, steps and list arguments each take their own plan.
    from thunder.executors import torchex

    x = torch.randn(4, 6, 10)
    cases = [
        ((0, 0, 3), (4, 6, 7), (1, 1, 1)),  # one cut: narrow
        ((0, 0, 3), (4, 6, 7), None),
        ((0, 0, 3), (4, 6, 70), None),  # end past the dim
        ((0, 0, 7), (4, 6, 7), (1, 1, 1)),  # empty
        ((1, 0, 3), (3, 6, 7), (1, 1, 1)),  # two cuts
        ((0, 0, 1), (4, 6, 10), (1, 1, 3)),  # a step
        ([0, 2, 0], [4, 5, 10], [1, 1, 1]),  # lists
    ]
    for _ in range(2):  # the second round reads the kept plans
        for a in (x, x[:, :, :8], x.transpose(0, 1)):
            for start, end, step in cases:
                step_ = step or [1] * 3
                ref = a[tuple(slice(s, e, st) for s, e, st in zip(start, end, step_))]
                got = torchex.slice(a, start, end, step)
                assert got.shape == ref.shape and got.stride() == ref.stride(), (start, end, step, a.shape)
                assert_close(got, ref)
                assert got.data_ptr() == ref.data_ptr() or ref.numel() == 0
