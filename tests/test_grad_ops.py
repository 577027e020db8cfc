"""Gradients of every differentiable op against torch.autograd, in float64, over sample inputs, and
the dot-product test <J u, v> = <u, J^T v> (J u from torch.func.jvp on eager, J^T v from thunder's
backward). Every case also checks that thunder's own backward ran (a backward trace exists)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder

D = torch.float64
# The torch executor alone: these tests pin down the gradients, not a fusion executor.
EXECUTORS = ["torch"]


CLASS_WEIGHT = torch.rand(5, dtype=D) + 0.5  # closed over: class weights take no gradient


def r(*shape):
    return torch.randn(shape, dtype=D)


def pos(*shape):
    return torch.rand(shape, dtype=D) + 0.5


def idx(high, *shape):
    return torch.randint(0, high, shape)


def _flat(x, out):
    if isinstance(x, torch.Tensor):
        out.append(x)
    elif isinstance(x, (tuple, list)):
        for v in x:
            _flat(v, out)
    return out


def _grad_inputs(args):
    return [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]


def _prepare(args):
    return [a.detach().clone().requires_grad_(a.is_floating_point())
            if isinstance(a, torch.Tensor) else a for a in args]


def check_grad(fn, args, *, seed=None, rtol=1e-7, atol=1e-7):
    args = _prepare(args)
    jfn = thunder.jit(fn, executors=EXECUTORS)
    if seed is not None:
        torch.manual_seed(seed)
    expected = _flat(fn(*args), [])
    if seed is not None:
        torch.manual_seed(seed)
    actual = _flat(jfn(*args), [])
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=rtol, atol=atol, equal_nan=True)
        assert a.requires_grad == e.requires_grad
    inputs = _grad_inputs(args)
    outs = [(a, e) for a, e in zip(actual, expected) if e.requires_grad]
    vs = [torch.randn_like(e) for _, e in outs]
    ge = torch.autograd.grad([e for _, e in outs], inputs, vs, allow_unused=True)
    gt = torch.autograd.grad([a for a, _ in outs], inputs, vs, allow_unused=True)
    for x, g_t, g_e in zip(inputs, gt, ge):
        g_t = torch.zeros_like(x) if g_t is None else g_t
        g_e = torch.zeros_like(x) if g_e is None else g_e
        torch.testing.assert_close(g_t, g_e, rtol=rtol, atol=atol)
    assert thunder.last_backward_traces(jfn), "thunder's backward did not run"
    return jfn, args, vs, gt


# (id, function, sample-argument factory). Non-tensor arguments are closed over.
CASES = [
    # matrix products
    ("matmul_2d", torch.matmul, lambda: (r(3, 4), r(4, 5))),
    ("matmul_1d_1d", torch.matmul, lambda: (r(4), r(4))),
    ("matmul_2d_1d", torch.matmul, lambda: (r(3, 4), r(4))),
    ("matmul_1d_3d", torch.matmul, lambda: (r(4), r(2, 4, 3))),
    ("matmul_batched_broadcast", torch.matmul, lambda: (r(2, 1, 3, 4), r(5, 4, 2))),
    ("bmm", torch.bmm, lambda: (r(2, 3, 4), r(2, 4, 5))),
    ("mm", torch.mm, lambda: (r(3, 4), r(4, 2))),
    ("addmm", torch.addmm, lambda: (r(3, 2), r(3, 4), r(4, 2))),
    ("linear", F.linear, lambda: (r(2, 3, 4), r(5, 4), r(5))),
    ("linear_nobias", F.linear, lambda: (r(3, 4), r(5, 4))),
    ("linear_1d_weight", F.linear, lambda: (r(3, 4), r(4))),
    ("embedding", F.embedding, lambda: (idx(10, 2, 5), r(10, 4))),
    ("embedding_padding_idx", lambda i, w: F.embedding(i, w, padding_idx=0),
     lambda: (idx(10, 2, 5), r(10, 4))),
    # normalization, softmax, activations
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (6,), w, b), lambda: (r(2, 3, 6), r(6), r(6))),
    ("layer_norm_no_affine", lambda x: F.layer_norm(x, (3, 6)), lambda: (r(2, 3, 6),)),
    ("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b), lambda: (r(2, 6, 3, 4), r(6), r(6))),
    ("group_norm_no_affine", lambda x: F.group_norm(x, 3, eps=1e-3), lambda: (r(3, 6, 5),)),
    ("group_norm_weight_only", lambda x, w: F.group_norm(x, 1, w), lambda: (r(2, 4, 2, 3), r(4))),
    ("group_norm_2d", lambda x, w, b: F.group_norm(x, 2, w, b), lambda: (r(5, 4), r(4), r(4))),
    ("batch_norm_train", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
     lambda: (r(4, 3, 5, 2), r(3), r(3))),
    ("batch_norm_train_running_stats",
     lambda x, w, b: F.batch_norm(x, torch.zeros(3, dtype=D), torch.ones(3, dtype=D), w, b, True, 0.2, 1e-3),
     lambda: (r(4, 3, 5), r(3), r(3))),
    ("batch_norm_train_no_affine", lambda x: F.batch_norm(x, None, None, training=True), lambda: (r(6, 4),)),
    ("batch_norm_eval", lambda x, w, b: F.batch_norm(x, torch.linspace(-1, 1, 3, dtype=D),
                                                      torch.linspace(0.5, 1.5, 3, dtype=D), w, b),
     lambda: (r(4, 3, 5), r(3), r(3))),
    ("rms_norm", lambda x, w: F.rms_norm(x, (6,), w, eps=1e-6), lambda: (r(2, 3, 6), r(6))),
    ("rms_norm_2d_no_weight", lambda x: F.rms_norm(x, (3, 6)), lambda: (r(2, 3, 6),)),
    ("softplus", F.softplus, lambda: (r(4, 5),)),
    ("softmax_last", lambda x: F.softmax(x, -1), lambda: (r(3, 5),)),
    ("softmax_dim0", lambda x: torch.softmax(x, 0), lambda: (r(3, 5),)),
    ("log_softmax", lambda x: F.log_softmax(x, dim=1), lambda: (r(2, 4, 3),)),
    ("gelu", F.gelu, lambda: (r(4, 5),)),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), lambda: (r(4, 5),)),
    ("silu", F.silu, lambda: (r(4, 5),)),
    ("relu", torch.relu, lambda: (r(4, 5),)),
    ("sigmoid", torch.sigmoid, lambda: (r(4, 5),)),
    ("tanh", torch.tanh, lambda: (r(4, 5),)),
    ("dropout", lambda x: F.dropout(x, 0.3), lambda: (r(8, 8),)),
    ("sdpa_causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
     lambda: (r(2, 2, 5, 4), r(2, 2, 5, 4), r(2, 2, 5, 4))),
    ("sdpa_float_mask", lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
     lambda: (r(1, 2, 4, 3), r(1, 2, 6, 3), r(1, 2, 6, 5), r(4, 6))),
    ("sdpa_gqa", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
     lambda: (r(1, 4, 3, 2), r(1, 2, 3, 2), r(1, 2, 3, 2))),
    ("sdpa_3d", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3),
     lambda: (r(2, 3, 4), r(2, 5, 4), r(2, 5, 4))),
    ("cross_entropy", F.cross_entropy, lambda: (r(4, 7), idx(7, 4))),
    ("cross_entropy_ignore_index",
     lambda x, t: F.cross_entropy(x, t, ignore_index=2), lambda: (r(6, 5), idx(5, 6))),
    ("cross_entropy_sum_weight",
     lambda x, t: F.cross_entropy(x, t, weight=CLASS_WEIGHT, reduction="sum"),
     lambda: (r(6, 5), idx(5, 6))),
    ("cross_entropy_spatial", F.cross_entropy, lambda: (r(2, 5, 3), idx(5, 2, 3))),
    ("cross_entropy_label_smoothing",
     lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), lambda: (r(4, 6), idx(6, 4))),
    ("cross_entropy_probs", F.cross_entropy, lambda: (r(4, 6), F.softmax(r(4, 6), -1))),
    ("nll_loss", F.nll_loss, lambda: (r(4, 6), idx(6, 4))),
    ("mse_loss", F.mse_loss, lambda: (r(3, 4), r(3, 4))),
    ("smooth_l1_loss", lambda x, t: F.smooth_l1_loss(x, t, beta=0.5), lambda: (r(3, 4), r(3, 4))),
    ("huber_loss", lambda x, t: F.huber_loss(x, t, delta=0.5, reduction="sum"),
     lambda: (r(3, 4), r(3, 4))),
    ("kl_div_batchmean", lambda x, t: F.kl_div(x, t, reduction="batchmean"),
     lambda: (F.log_softmax(r(3, 4), -1), F.softmax(r(3, 4), -1))),
    ("kl_div_log_target", lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True),
     lambda: (F.log_softmax(r(3, 4), -1), F.log_softmax(r(3, 4), -1))),
    ("glu", lambda x: F.glu(x, 1), lambda: (r(3, 4),)),
    ("cumsum", lambda x: torch.cumsum(x, 1) * x, lambda: (r(3, 5),)),
    ("cumsum_dtype_1d", lambda x: torch.cumsum(x, -1, dtype=torch.float64), lambda: (r(6),)),
    ("tile", lambda x: torch.tile(x, (2, 1, 3)), lambda: (r(2, 3),)),
    ("outer", torch.outer, lambda: (r(3), r(4))),
    ("rrelu_eval", lambda x: F.rrelu(x, 0.1, 0.3), lambda: (r(3, 4),)),
    ("prelu_channels", F.prelu, lambda: (r(2, 3, 4), r(3))),
    ("prelu_one", F.prelu, lambda: (r(3, 4), r(1))),
    ("hypot", torch.hypot, lambda: (r(3, 4), r(4))),
    ("logit", torch.logit, lambda: (torch.rand(3, 4, dtype=D) * 0.8 + 0.1,)),
    ("copysign", torch.copysign, lambda: (r(3, 4), r(3, 1))),
    ("xlogy", torch.xlogy, lambda: (r(3, 4), pos(4))),
    ("xlog1py", torch.special.xlog1py, lambda: (r(3, 4), pos(3, 4))),
    ("float_power", torch.float_power, lambda: (pos(3, 4), r(3, 4))),
    ("margin_ranking_loss", lambda a, b, t: F.margin_ranking_loss(a, b, t, 0.2), lambda: (r(5), r(5), r(5))),
    ("hinge_embedding_loss", lambda a: F.hinge_embedding_loss(a, torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=D)),
     lambda: (r(5),)),
    ("soft_margin_loss", lambda a: F.soft_margin_loss(a, torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=D)),
     lambda: (r(5),)),
    ("cosine_embedding_loss", lambda a, b: F.cosine_embedding_loss(a, b, torch.tensor([1.0, -1.0, 1.0], dtype=D), 0.1),
     lambda: (r(3, 4), r(3, 4))),
    ("poisson_nll_loss", F.poisson_nll_loss, lambda: (r(5), pos(5))),
    ("poisson_nll_loss_full", lambda a, t: F.poisson_nll_loss(a, t, log_input=False, full=True),
     lambda: (pos(5), pos(5) * 2)),
    ("selu", F.selu, lambda: (r(3, 4) * 3,)),
    ("celu", lambda x: F.celu(x, 0.7), lambda: (r(3, 4) * 3,)),
    ("logsigmoid", F.logsigmoid, lambda: (r(3, 4) * 3,)),
    ("softsign", F.softsign, lambda: (r(3, 4) * 3,)),
    ("tanhshrink", F.tanhshrink, lambda: (r(3, 4) * 3,)),
    ("softshrink", F.softshrink, lambda: (r(3, 4) * 3,)),
    ("hardshrink", F.hardshrink, lambda: (r(3, 4) * 3,)),
    ("threshold", lambda x: F.threshold(x, 0.3, -1.0), lambda: (r(3, 4) * 3,)),
    ("softmin", lambda x: F.softmin(x, -1), lambda: (r(3, 5),)),
    ("normalize", lambda x: F.normalize(x, dim=-1), lambda: (r(3, 5),)),
    ("normalize_p1_dim0", lambda x: F.normalize(x, 1.0, 0), lambda: (r(3, 5),)),
    # arithmetic, comparisons, where, clamp, pow
    ("add_broadcast", torch.add, lambda: (r(2, 3, 4), r(4))),
    ("add_alpha", lambda a, b: torch.add(a, b, alpha=2.5), lambda: (r(3, 4), r(3, 1))),
    ("sub_scalar", lambda a: 3.0 - a, lambda: (r(3, 4),)),
    ("mul_broadcast", torch.mul, lambda: (r(3, 1), r(1, 4))),
    ("div", torch.div, lambda: (r(3, 4), pos(3, 4))),
    ("rdiv_scalar", lambda a: 2.0 / a, lambda: (pos(3, 4),)),
    ("pow_scalar", lambda a: a ** 3, lambda: (r(3, 4),)),
    ("pow_tensor", torch.pow, lambda: (pos(3, 4), r(3, 4))),
    ("rpow", lambda a: 2.0 ** a, lambda: (r(5),)),
    ("rsqrt", torch.rsqrt, lambda: (pos(3, 4),)),
    ("sqrt", torch.sqrt, lambda: (pos(3, 4),)),
    ("exp_log", lambda a: torch.log(torch.exp(a) + 1), lambda: (r(3, 4),)),
    ("sin_cos", lambda a: torch.sin(a) * torch.cos(a), lambda: (r(3, 4),)),
    ("abs_neg", lambda a: -torch.abs(a), lambda: (r(3, 4),)),
    ("reciprocal", torch.reciprocal, lambda: (pos(3, 4),)),
    ("erf", torch.erf, lambda: (r(3, 4),)),
    ("maximum", torch.maximum, lambda: (r(3, 4), r(3, 4))),
    ("minimum_broadcast", torch.minimum, lambda: (r(3, 4), r(4))),
    ("where_compare", lambda a, b: torch.where(a > b, a * 2, b), lambda: (r(3, 4), r(3, 4))),
    ("where_scalar", lambda a: torch.where(a < 0, 0.0, a), lambda: (r(3, 4),)),
    ("masked_fill", lambda a: a.masked_fill(a > 0.5, -1.0), lambda: (r(3, 4),)),
    ("clamp", lambda a: torch.clamp(a, -0.5, 0.5), lambda: (r(3, 4),)),
    ("clamp_min", lambda a: a.clamp(min=0.1), lambda: (r(3, 4),)),
    ("comparison_output", lambda a: (a > 0, a * 2), lambda: (r(3, 4),)),
    # reductions
    ("sum_all", torch.sum, lambda: (r(3, 4),)),
    ("sum_dim_keepdim", lambda a: a.sum(dim=(0, 2), keepdim=True), lambda: (r(2, 3, 4),)),
    ("mean", lambda a: a.mean(-1), lambda: (r(2, 3, 4),)),
    ("var", lambda a: torch.var(a, dim=1), lambda: (r(3, 5),)),
    ("var_correction0", lambda a: torch.var(a, dim=(0, 1), correction=0), lambda: (r(3, 5, 2),)),
    ("std", lambda a: a.std(), lambda: (r(3, 5),)),
    ("amax", lambda a: torch.amax(a, dim=1), lambda: (r(3, 5),)),
    ("amin", lambda a: a.amin(), lambda: (r(3, 5),)),
    ("max_dim", lambda a: torch.max(a, dim=1).values, lambda: (r(3, 5),)),
    ("logsumexp", lambda a: torch.logsumexp(a, dim=-1), lambda: (r(3, 5),)),
    ("prod", lambda a: torch.prod(a, 1), lambda: (pos(3, 4),)),
    # shapes
    ("view", lambda a: a.view(4, 3) * 2, lambda: (r(3, 4),)),
    ("reshape", lambda a: a.reshape(2, -1), lambda: (r(3, 4),)),
    ("permute", lambda a: a.permute(2, 0, 1), lambda: (r(2, 3, 4),)),
    ("transpose", lambda a: a.transpose(0, 1), lambda: (r(2, 3),)),
    ("t", lambda a: a.t(), lambda: (r(2, 3),)),
    ("split", lambda a: a.split(2, dim=1), lambda: (r(3, 5),)),
    ("chunk", lambda a: a.chunk(3, dim=0), lambda: (r(6, 2),)),
    ("unbind", lambda a: a.unbind(1), lambda: (r(2, 3),)),
    ("cat", lambda a, b: torch.cat([a, b], dim=1), lambda: (r(2, 3), r(2, 4))),
    ("stack", lambda a, b: torch.stack([a, b], dim=1), lambda: (r(2, 3), r(2, 3))),
    ("expand", lambda a: a.expand(3, 4, 2), lambda: (r(4, 1),)),
    ("repeat_interleave", lambda a: a.repeat_interleave(3, dim=0), lambda: (r(2, 3),)),
    ("unsqueeze_squeeze", lambda a: a.unsqueeze(1).squeeze(0), lambda: (r(1, 3),)),
    ("flatten", lambda a: a.flatten(1), lambda: (r(2, 3, 4),)),
    ("contiguous", lambda a: a.t().contiguous(), lambda: (r(2, 3),)),
    ("getitem_slices", lambda a: a[1:, ::2], lambda: (r(4, 5),)),
    ("getitem_step_none_ellipsis", lambda a: a[..., None, 1::3], lambda: (r(2, 3, 7),)),
    ("getitem_int", lambda a: a[1, :, -1], lambda: (r(3, 4, 5),)),
    ("getitem_int_tensor", lambda a, i: a[i], lambda: (r(5, 3), torch.tensor([0, 3, 3, 1]))),
    ("getitem_int_tensor_dim1", lambda a, i: a[:, i], lambda: (r(2, 5), torch.tensor([4, 0]))),
    ("index_select", lambda a, i: torch.index_select(a, 1, i), lambda: (r(3, 5), torch.tensor([1, 1, 4]))),
    ("gather", lambda a, i: torch.gather(a, 1, i), lambda: (r(3, 5), idx(5, 3, 2))),
    ("flip", lambda a: torch.flip(a, (0,)), lambda: (r(3, 4),)),
    ("pad", lambda a: F.pad(a, (1, 2)), lambda: (r(3, 4),)),
    ("to_float32_and_back", lambda a: (a.to(torch.float32) * 2).double(), lambda: (r(3, 4),)),
    ("type_as", lambda a, b: a.float().type_as(b), lambda: (r(3, 4), r(2))),
    # convolution, normalization over channels, pooling
    ("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
     lambda: (r(2, 3, 7, 7), r(4, 3, 3, 3), r(4))),
    ("conv2d_groups", lambda x, w: F.conv2d(x, w, groups=2), lambda: (r(1, 4, 5, 5), r(6, 2, 3, 3))),
    ("batch_norm_train", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
     lambda: (r(4, 3, 2, 2), r(3), r(3))),
    ("batch_norm_eval",
     lambda x, w, b: F.batch_norm(x, torch.zeros(3, dtype=D), torch.ones(3, dtype=D), w, b),
     lambda: (r(4, 3, 2, 2), r(3), r(3))),
    ("instance_norm", lambda x, w, b: F.instance_norm(x, weight=w, bias=b), lambda: (r(2, 3, 4, 5), r(3), r(3))),
    ("instance_norm_1d", lambda x: F.instance_norm(x, eps=1e-3), lambda: (r(2, 3, 6),)),
    ("interpolate_nearest", lambda x: F.interpolate(x, scale_factor=(2, 1.5)), lambda: (r(2, 3, 4, 5),)),
    ("interpolate_nearest_exact", lambda x: F.interpolate(x, size=3, mode="nearest-exact"), lambda: (r(2, 3, 7),)),
    ("cosine_similarity", lambda a, b: F.cosine_similarity(a, b, dim=-1), lambda: (r(3, 5, 6), r(1, 5, 6))),
    ("einsum_attention", lambda q, k: torch.einsum("bhqd,bhkd->bhqk", q, k), lambda: (r(2, 3, 5, 4), r(2, 3, 6, 4))),
    ("einsum_chain", lambda a, b, c: torch.einsum("bn,anm,bm->ba", a, b, c), lambda: (r(2, 3), r(4, 3, 5), r(2, 5))),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2), lambda: (r(2, 3, 4, 4),)),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 2, stride=1), lambda: (r(2, 3, 4, 4),)),
]

IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,fn,make", CASES, ids=IDS)
def test_grad_matches_torch_autograd(name, fn, make):
    torch.manual_seed(0)
    check_grad(fn, make(), seed=1 if "dropout" in name else None)


# Forward-mode AD (torch.func.jvp) has no rule for a few of the ops above in eager PyTorch.
NO_JVP = {"dropout", "embedding_padding_idx"}


@pytest.mark.parametrize("name,fn,make", [c for c in CASES if c[0] not in NO_JVP],
                         ids=[i for i in IDS if i not in NO_JVP])
def test_vjp_is_the_adjoint_of_jvp(name, fn, make):
    torch.manual_seed(0)
    _, args, vs, vjps = check_grad(fn, make())
    inputs = _grad_inputs(args)
    us = [torch.randn_like(x) for x in inputs]
    pos_of = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]

    def f_of(*xs):
        full = list(args)
        for i, x in zip(pos_of, xs):
            full[i] = x
        outs = _flat(fn(*full), [])
        return tuple(o for o in outs if o.is_floating_point())

    try:
        _, jus = torch.func.jvp(f_of, tuple(x.detach() for x in inputs), tuple(us))
    except (NotImplementedError, RuntimeError) as e:
        pytest.skip(f"eager forward-mode AD does not support this op: {e}")
    lhs = sum((ju * v).sum() for ju, v in zip(jus, vs))
    rhs = sum((u * (g if g is not None else torch.zeros_like(u))).sum() for u, g in zip(us, vjps))
    torch.testing.assert_close(lhs, rhs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("executors", [["torch"], None], ids=["torch", "default"])
def test_group_norm_gradients_of_its_edge_cases(executors):
    # group_norm's rule saves each group's mean and rstd for ATen's native_group_norm_backward or its
    # fused decomposition (the default executors fuse these 4096-element inputs): a bf16 input with
    # float32 weight and bias (statistics and parameter gradients in float32, as ATen gives them),
    # an empty batch, and a bias without a weight, whose gradient eager's backward does not give
    # (it raises): there against eager with a weight of ones, the same function.
    torch.manual_seed(0)
    jit = (lambda f: thunder.jit(f, executors=executors)) if executors else thunder.jit
    x16, w, b = torch.randn(2, 8, 16, 16).bfloat16() * 3 + 1, torch.randn(8), torch.randn(8)
    cases = [(lambda x, w, b: F.group_norm(x, 4, w, b), lambda x, w, b: F.group_norm(x, 4, w, b),
              (x16, w, b), {"atol": 3e-2, "rtol": 2e-2}),
             (lambda x, w: F.group_norm(x, 2, w), lambda x, w: F.group_norm(x, 2, w),
              (torch.randn(0, 6, 5), torch.randn(6)), {}),
             (lambda x, b: F.group_norm(x, 4, None, b), lambda x, b: F.group_norm(x, 4, torch.ones(8), b),
              (torch.randn(2, 8, 16, 16), b), {})]
    for fn, ref, args, tol in cases:
        ins = [[a.detach().clone().requires_grad_() for a in args] for _ in range(2)]
        got, want = jit(fn)(*ins[0]), ref(*ins[1])
        torch.testing.assert_close(got, want, **tol)
        cot = torch.randn_like(want)
        got.backward(cot)
        want.backward(cot)
        for a, e in zip(*ins):
            assert a.grad.dtype == e.dtype
            torch.testing.assert_close(a.grad, e.grad, **tol)


@pytest.mark.parametrize("executors", [["torch"], None], ids=["torch", "default"])
def test_batch_norm_training_gradients_of_its_edge_cases(executors):
    # batch_norm's rule in training saves each channel's mean and rstd for ATen's
    # native_batch_norm_backward or its fused decomposition (the default executors fuse these
    # 4096-element inputs): a bf16 input with float32 weight and bias (parameter gradients in
    # float32, as eager's), running statistics updated as eager's, and a bias without a weight.
    torch.manual_seed(0)
    jit = (lambda f: thunder.jit(f, executors=executors)) if executors else thunder.jit
    x16, w, b = torch.randn(8, 16, 32).bfloat16() * 3 + 1, torch.randn(16), torch.randn(16)
    cases = [((x16, w, b), {"atol": 3e-2, "rtol": 2e-2}, lambda: (None, None)),
             ((torch.randn(8, 16, 32), w, b), {}, lambda: (torch.zeros(16), torch.ones(16))),
             ((torch.randn(8, 16, 32), None, b), {}, lambda: (None, None))]
    for args, tol, running in cases:
        stats = [running() for _ in range(2)]
        fns = [lambda x, w, b, s=s: F.batch_norm(x, s[0], s[1], w, b, True, 0.1, 1e-5) for s in stats]
        ins = [[a if a is None else a.detach().clone().requires_grad_() for a in args] for _ in range(2)]
        got, want = jit(fns[0])(*ins[0]), fns[1](*ins[1])
        torch.testing.assert_close(got, want, **tol)
        cot = torch.randn_like(want)
        got.backward(cot)
        want.backward(cot)
        for a, e in zip(*ins):
            if a is not None:
                assert a.grad.dtype == e.grad.dtype
                torch.testing.assert_close(a.grad, e.grad, **tol)
        for s_got, s_want in zip(*stats):
            if s_want is not None:
                torch.testing.assert_close(s_got, s_want)
