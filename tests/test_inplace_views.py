"""In-place updates through views: the update reaches the viewed tensor (and, for a function input,
the caller's tensor), and every other view of it sees the new values, as in eager."""

import pytest
import torch
from nn_training import train_two_steps

import thunder


def _run(fn, *inputs):
    """Runs fn eagerly and jitted on separate copies; compares results and the inputs afterwards."""
    eager_in = [x.clone() for x in inputs]
    jit_in = [x.clone() for x in inputs]
    want = fn(*eager_in)
    jfn = thunder.jit(fn)
    got = jfn(*jit_in)
    torch.testing.assert_close(got, want)
    for a, b in zip(jit_in, eager_in):
        torch.testing.assert_close(a, b)
    return jfn


def test_kv_cache_update_through_narrow_copy_into_an_input():
    def f(cache, k, pos: int):
        cache.narrow(2, pos, k.shape[2]).copy_(k)
        return cache.sum(-1)

    cache = torch.zeros(2, 3, 8, 4)
    k = torch.randn(2, 3, 2, 4)
    _run(lambda c, k: f(c, k, 5), cache, k)


def test_slice_of_an_input_updated_in_place():
    def f(x, v):
        x[:, 1:3].mul_(v)
        x[0].add_(1)
        return x * 2

    _run(f, torch.randn(4, 5), torch.randn(4, 2))


@pytest.mark.parametrize("view", [
    lambda y: y.view(-1),
    lambda y: y[1],
    lambda y: y[:, ::2],
    lambda y: y.t(),
    lambda y: y.transpose(0, 1)[2],
    lambda y: y.permute(1, 0),
    lambda y: y.unsqueeze(0).squeeze(0),
    lambda y: y.select(1, 3),
    lambda y: y.narrow(0, -2, 2),
    lambda y: y.movedim(0, 1),
    lambda y: y.reshape(2, 2, 5),
    lambda y: y.flatten()[3:9],
    lambda y: y.view(2, 10)[1].narrow(0, 1, 3),
    lambda y: y.detach(),
], ids=["view", "int", "step_slice", "t", "transpose_index", "permute", "unsqueeze_squeeze",
        "select", "negative_narrow", "movedim", "reshape", "flatten_slice", "chain", "detach"])
def test_update_through_a_view_reaches_the_base_and_other_views(view):
    def f(x):
        y = x * 1.0
        other = y[:, :2]  # another view, taken before the update
        v = view(y)
        v.mul_(3).add_(1)
        return y, other, v

    _run(f, torch.randn(4, 5))


@pytest.mark.parametrize("split", [
    lambda y: y.split(2),
    lambda y: y.chunk(3, dim=1),
    lambda y: y.unbind(1),
    lambda y: torch.tensor_split(y, 3),
])
def test_update_through_a_multi_output_view(split):
    def f(x):
        y = x + 0
        parts = split(y)
        parts[1].zero_()
        return y, parts[0], parts[-1]

    _run(f, torch.randn(5, 4))


def test_reshape_of_a_non_contiguous_tensor_is_a_copy():
    def f(x):
        y = (x + 0).t()
        r = y.reshape(-1)  # a copy in eager: y is not contiguous
        r.fill_(7)
        return y, r

    _run(f, torch.randn(3, 4))


def test_gradients_through_an_in_place_update_of_a_view():
    def f(x, w):
        y = x * w
        y[1:3].mul_(2)
        y.narrow(1, 0, 1).sin_()
        return (y * y).sum()

    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    jf = thunder.jit(f)
    got = torch.autograd.grad(jf(x, w), (x, w))
    want = torch.autograd.grad(f(x, w), (x, w))
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e)


def test_the_trace_shows_the_update_as_setitem_and_copy():
    def f(cache, k):
        cache[:, 1].copy_(k)
        return cache

    jf = _run(f, torch.zeros(2, 3), torch.ones(2))
    source = str(thunder.last_traces(jf)[-1])
    assert "setitem" in source and "copy_" in source


def test_update_through_expand_is_refused_as_in_eager():
    def f(x):
        y = x + 0
        e = y[:, :1].expand(3, 4)
        e.add_(1)
        return y

    with pytest.raises(RuntimeError):
        f(torch.randn(3, 1))
    with pytest.raises(Exception):
        thunder.jit(f)(torch.randn(3, 1))


def test_torch_functions_that_update_in_place():
    # torch.relu_(x), torch.sigmoid_(x), F.relu_(x)...: recorded as the Tensor methods of the same
    # name, the input updated as eager updates it.
    import torch.nn.functional as F

    def fn(x, y):
        torch.relu_(x)
        torch.sigmoid_(x)
        F.relu_(y)
        torch.clamp_(y, 0.1, 0.7)
        torch.exp_(x)
        return x * y

    x, y = torch.randn(6, 8), torch.randn(6, 8)
    x2, y2 = x.clone(), y.clone()
    torch.testing.assert_close(thunder.jit(fn)(x, y), fn(x2, y2))
    torch.testing.assert_close(x, x2)
    torch.testing.assert_close(y, y2)


def test_out_arguments_write_into_their_tensors():
    # out=: the call out of place, its result copied into `out` (an input, a view of one, a tensor
    # made in the function, or a tuple for calls with several outputs), as eager writes it.
    import torch.nn.functional as F

    def f(x, buf, vals, idx):
        F.normalize(x, dim=0, out=buf[1:])
        y = torch.add(x, 1, out=torch.empty_like(x))
        torch.max(x, 1, out=(vals, idx))
        z = torch.mul(x, 3, out=torch.empty(4, 3, dtype=torch.float64))  # cast up on the copy
        return buf[1:] * 2 + y, torch.max(x, 0, out=(torch.empty(3), torch.empty(3, dtype=torch.long))).indices, z

    torch.manual_seed(0)
    _run(f, torch.randn(4, 3), torch.zeros(5, 3), torch.empty(4), torch.zeros(4, dtype=torch.long))


def test_out_arguments_that_eager_refuses_or_resizes():
    x = torch.randn(4, 3)
    with pytest.raises(RuntimeError, match="can't be cast") as e:  # eager's check, as its meta kernel words it
        thunder.jit(lambda x: torch.add(x, 1, out=torch.empty(4, 3, dtype=torch.long)))(x)
    assert "test_inplace_views.py" in str(e.value)  # the user's line
    with pytest.raises(RuntimeError, match="Expected out tensor to have dtype"):
        thunder.jit(lambda x: torch.matmul(x, x.t(), out=torch.empty(4, 4, dtype=torch.float64)))(x)
    with pytest.raises(NotImplementedError, match=r"out= tensor of shape \(2,\) for a result of shape \(4, 3\)"):
        thunder.jit(lambda x: torch.add(x, 1, out=torch.empty(2)))(x)


def test_spectral_norm_trains_as_in_eager():
    # Its power iteration updates the u and v buffers through F.normalize(..., out=) under no_grad.
    import copy

    torch.manual_seed(0)
    ref = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Linear(5, 4))
    mod = copy.deepcopy(ref)
    jm = thunder.jit(mod)
    for _ in range(2):
        x = torch.randn(3, 5)
        want, got = ref(x), jm(x)
        torch.testing.assert_close(got, want)
        want.sum().backward()
        got.sum().backward()
        for (name, pr), pj in zip(ref.named_parameters(), mod.parameters()):
            torch.testing.assert_close(pj.grad, pr.grad, msg=name)
            with torch.no_grad():
                pr -= 0.1 * pr.grad
                pj -= 0.1 * pj.grad
            pr.grad = pj.grad = None
        for (name, br), bj in zip(ref.named_buffers(), mod.buffers()):
            torch.testing.assert_close(bj, br, msg=name)


def test_in_place_writes_through_data_reach_the_tensor():
    # p.data is p's memory without autograd history: a clamp through it (weight clipping) or an
    # update (an exponential moving average) changes p, as in eager.
    def clip_and_use(p, ema, x):
        p.data.clamp_(-0.5, 0.5)
        ema.data.mul_(0.9).add_(p.data, alpha=0.1)
        return (p * x).sum() + ema.data.sum()

    torch.manual_seed(0)
    p, ema, x = torch.randn(6), torch.zeros(6), torch.randn(6)
    p2, ema2 = p.clone(), ema.clone()
    jfn = thunder.jit(clip_and_use)
    for _ in range(2):
        torch.testing.assert_close(jfn(p, ema, x), clip_and_use(p2, ema2, x))
        torch.testing.assert_close((p, ema), (p2, ema2))


@pytest.mark.parametrize("how", ["no_grad", "data", "detach", "no_grad_view", "twice"])
def test_in_place_update_of_a_leaf_that_requires_grad_matches_eager(how):
    # Eager updates the leaf's values without history and keeps differentiating with respect to the
    # leaf: what reads it afterwards gives the leaf its gradient (prims.leaf_update), and the leaf
    # holds the new values after the call.
    def f(p, x):
        before = (p + x).sum()  # read before the update: differentiates with respect to the leaf too
        if how == "no_grad":
            with torch.no_grad():
                p.clamp_(-0.5, 0.5)
        elif how == "data":
            p.data.clamp_(-0.5, 0.5)
        elif how == "detach":
            p.detach().clamp_(-0.5, 0.5)
        elif how == "no_grad_view":
            with torch.no_grad():
                p[:2].mul_(2)
        else:
            p.data.mul_(2)
            with torch.no_grad():
                p[1:].add_(1)
        return (p * x).sum() + before

    torch.manual_seed(0)
    p0, x = torch.randn(6), torch.randn(6)
    pe, pj = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    jf = thunder.jit(f)
    want, got = f(pe, x), jf(pj, x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(pj.detach(), pe.detach())
    want.backward()
    got.backward()
    torch.testing.assert_close(pj.grad, pe.grad)
    assert "prims.leaf_update(" in str(thunder.last_traces(jf)[-1])


@pytest.mark.parametrize("how", ["direct", "view"])
def test_in_place_update_of_a_leaf_that_requires_grad_with_grad_on_is_refused_as_in_eager(how):
    def f(p):
        if how == "direct":
            p.mul_(2)
        else:
            p[:2].mul_(2)
        return p.sum()

    for fn in (f, thunder.jit(f)):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in an in-place operation"):
            fn(torch.randn(6, requires_grad=True))


def test_parameter_clamped_in_forward_trains_as_in_eager():
    # A module that renormalizes its weight in place under no_grad in forward (as Embedding(max_norm)
    # does): its output, its parameters' gradients and values after SGD steps are eager's.
    class Clamped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x):
            with torch.no_grad():
                self.lin.weight.clamp_(-0.2, 0.2)
            return self.lin(x).tanh()

    train_two_steps(Clamped, (5, 4))


_COUNTS = torch.zeros(3)


def test_in_place_update_of_a_global_tensor_is_seen_by_later_reads():
    # A global tensor (an input of the program, by identity) updated in place: what reads it
    # afterwards sees the new values, and the tensor holds them after the call.
    def f(x):
        _COUNTS.add_(1)
        return x + _COUNTS

    mine = torch.zeros(3)

    def eager(x):
        mine.add_(1)
        return x + mine

    jf = thunder.jit(f)
    for _ in range(2):
        torch.testing.assert_close(jf(torch.ones(3)), eager(torch.ones(3)))
        torch.testing.assert_close(_COUNTS, mine)
    assert not hasattr(_COUNTS, "_thunder_ref")


def test_kv_cache_in_a_plain_tensor_attribute_is_written_and_read_as_eager():
    class Cache(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.k = torch.zeros(4, 2)  # a plain attribute, not a buffer

        def forward(self, pos, k):
            self.k[pos] = k
            self.k[:, 1].mul_(2)
            return self.k.sum(0)

    mod, ref = Cache(), Cache()
    jm = thunder.jit(mod)
    for i in range(3):
        torch.testing.assert_close(jm(i, torch.full((2,), float(i + 1))), ref(i, torch.full((2,), float(i + 1))))
    torch.testing.assert_close(mod.k, ref.k)


def test_updating_an_input_that_shares_memory_with_another_is_refused():
    # The program treats inputs as separate memory: with the same tensor passed twice (or a view of
    # another input), the other input would not see the update. Refused clearly, also when a
    # program compiled for separate tensors is called with aliased ones.
    def f(a, b):
        a.add_(1)
        return b * 2

    jf = thunder.jit(f)
    x, y = torch.zeros(3), torch.zeros(3)
    torch.testing.assert_close(jf(x, y), torch.zeros(3))
    t = torch.zeros(3)
    with pytest.raises(NotImplementedError, match="'a' is updated in place and shares memory with the input 'b'"):
        jf(t, t)
    base = torch.zeros(2, 3)
    with pytest.raises(NotImplementedError, match="shares memory"):
        jf(base[1], base)
    torch.testing.assert_close(jf(x, y), torch.zeros(3))  # separate tensors still run
    # Aliased inputs the function does not update are fine.
    torch.testing.assert_close(thunder.jit(lambda a, b: a + b)(t, t), t + t)


def test_updating_a_non_leaf_input_that_requires_grad_warns():
    # Eager puts the update into the tensor's history; the program's write-back cannot, so the
    # caller's later gradients through it would differ: a warning says so. The function's own result
    # and gradients are eager's (an in-place activation at the start of a jitted submodule).
    head = torch.nn.Sequential(torch.nn.ReLU(inplace=True), torch.nn.Linear(4, 2))
    jhead = thunder.jit(head)
    lin = torch.nn.Linear(3, 4)
    x = torch.randn(5, 3)
    with pytest.warns(UserWarning, match="requires grad, is computed from other tensors"):
        got = jhead(lin(x))
    got.sum().backward()
    g_jit = lin.weight.grad.clone()
    lin.weight.grad = None
    head(lin(x)).sum().backward()
    torch.testing.assert_close(g_jit, lin.weight.grad)


@pytest.mark.parametrize("case", ["broadcast_tensors", "atleast_2d", "real", "positive", "conj"])
def test_calls_that_return_their_input_alias_it_as_in_eager(case):
    # These return the input itself in eager: an in-place update through the result reaches it (as a
    # copy, the update was lost).
    f = {
        "broadcast_tensors": lambda x: torch.broadcast_tensors(x, torch.zeros(3))[0].add_(1),
        "atleast_2d": lambda x: torch.atleast_2d(x).mul_(2),
        "real": lambda x: x.real.add_(1),
        "positive": lambda x: torch.positive(x).sub_(1),
        "conj": lambda x: x.conj().mul_(3),
    }[case]
    a = torch.randn(2, 3)
    b = a.clone()
    torch.testing.assert_close(thunder.jit(f)(a), f(b))
    torch.testing.assert_close(a, b)


def test_optimizer_like_step_updates_leaves_under_no_grad():
    # Leaves that require grad updated under no_grad, with no output needing grad: the write-back
    # into them runs without recording (torch refuses an in-place update of such a leaf with grad on).
    def sgd(ps, gs):
        with torch.no_grad():
            for p, g in zip(ps, gs):
                p.sub_(0.1 * g)

    ps = [torch.randn(3, requires_grad=True) for _ in range(2)]
    gs = [torch.randn(3) for _ in range(2)]
    want = [p.detach() - 0.1 * g for p, g in zip(ps, gs)]
    thunder.jit(sgd)(ps, gs)
    for p, w in zip(ps, want):
        torch.testing.assert_close(p.detach(), w)
        assert p.is_leaf and p.requires_grad


def test_view_taken_before_a_leaf_update_keeps_its_gradient():
    def f(w, x):
        v = w[0]
        with torch.no_grad():
            w.mul_(2)
        return (w * x).sum() + (v * x[0]).sum()

    x = torch.arange(6.0).view(2, 3)
    a, b = torch.ones(2, 3, requires_grad=True), torch.ones(2, 3, requires_grad=True)
    f(a, x).backward()
    thunder.jit(f)(b, x).backward()
    torch.testing.assert_close(b.grad, a.grad)


def test_updated_views_of_one_buffer_that_do_not_overlap_are_separate_inputs():
    # The two halves of one cache: each updated in place (they share a storage, not memory).
    def f(k, v, nk, nv):
        k.copy_(nk)
        v.copy_(nv)
        return k.sum() + v.sum()

    jf = thunder.jit(f)
    for _ in range(2):
        kv = torch.zeros(2, 4)
        torch.testing.assert_close(jf(kv[0], kv[1], torch.ones(4), torch.full((4,), 2.0)), torch.tensor(12.0))
        torch.testing.assert_close(kv, torch.tensor([[1.0] * 4, [2.0] * 4]))
    assert thunder.cache_misses(jf) == 1
    with pytest.raises(NotImplementedError, match="shares memory"):
        jf(kv[0], kv[0], torch.ones(4), torch.ones(4))


_IDX = torch.tensor([0, 2])


@pytest.mark.parametrize("case", [
    lambda x: x.index_add_(0, _IDX, torch.ones(2, 4), alpha=3),
    lambda x: x.index_copy_(0, _IDX, torch.full((2, 4), 7.0)),
    lambda x: x.index_fill_(1, _IDX, -1.0),
    lambda x: x[1:].cumsum_(0),
    lambda x: x.div_(0).nan_to_num_(posinf=5.0),
    lambda x: x.put_(_IDX, torch.tensor([1.0, 2.0]), accumulate=True),
    lambda x: x.masked_scatter_(x > 0, torch.arange(20.0).reshape(5, 4)),
], ids=["index_add_", "index_copy_", "index_fill_", "cumsum_ of a view", "nan_to_num_", "put_",
        "masked_scatter_"])
def test_inplace_methods_without_a_rule_update_the_input(case):
    # Traced as their out-of-place form copied into the tensor: the input and its views see it.
    _run(lambda x: case(x) * 1, torch.randn(5, 4))


def test_inplace_method_without_a_rule_differentiates_and_refuses_a_leaf():
    x = torch.randn(5, 4, requires_grad=True)
    src = torch.randn(2, 4, requires_grad=True)

    def f(x, src):
        y = x * 2
        y.index_add_(0, _IDX, src, alpha=3)
        return (y * y).sum()

    got = torch.autograd.grad(thunder.jit(f)(x, src), (x, src))
    torch.testing.assert_close(got, torch.autograd.grad(f(x, src), (x, src)))
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        thunder.jit(lambda x: x.index_add_(0, _IDX, src))(x)
    # eager's own checks of the call (through torch's meta kernel)
    with pytest.raises(RuntimeError, match="must have the same scalar type"):
        thunder.jit(lambda x: x.index_add_(0, _IDX, torch.ones(2, 4)))(torch.zeros(5, 4, dtype=torch.long))


def test_static_cache_buffer_updated_by_index_copy_():
    class Cache(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("k", torch.zeros(1, 2, 8, 4))

        def forward(self, pos, kv):
            self.k.index_copy_(2, pos, kv)
            return self.k.sum(-1)

    eager, jitted = Cache(), Cache()
    jm = thunder.jit(jitted)
    for p in range(3):
        pos, kv = torch.tensor([p]), torch.randn(1, 2, 1, 4)
        torch.testing.assert_close(jm(pos, kv), eager(pos, kv))
    torch.testing.assert_close(jitted.k, eager.k)


_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _DEVICES)
def test_random_inplace_fills_draw_as_eager_describes(device):
    n = 200_000
    u = thunder.jit(lambda x: torch.empty_like(x).uniform_(-2, 3))(torch.empty(n, device=device))
    assert -2 <= u.min().item() and u.max().item() < 3 and abs(u.mean().item() - 0.5) < 0.02
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.empty(n, dtype=dtype, device=device)
        r = thunder.jit(lambda x: x.normal_(1.5, 2.0))(x)
        assert r.dtype == dtype and r is x
        assert abs(r.float().mean().item() - 1.5) < 0.03 and abs(r.float().std().item() - 2.0) < 0.03
    b = thunder.jit(lambda x, p: x.bernoulli_(p))(torch.empty(n, dtype=torch.long, device=device),
                                                  torch.full((n,), 0.3, device=device))
    assert b.dtype == torch.long and set(b.unique().tolist()) <= {0, 1} and abs(b.float().mean().item() - 0.3) < 0.01


@pytest.mark.parametrize("device", _DEVICES)
def test_drop_path_with_bernoulli_(device):
    # Stochastic depth as written in common vision models: a per-sample mask drawn in place.
    def drop_path(x, p=0.25):
        keep = 1 - p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        mask.div_(keep)
        return x * mask

    x = torch.randn(4096, 3, device=device, requires_grad=True)
    y = thunder.jit(drop_path)(x)
    dropped = (y == 0).all(1)
    assert abs(dropped.float().mean().item() - 0.25) < 0.05
    torch.testing.assert_close(y[~dropped], x[~dropped] / 0.75)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (~dropped).float()[:, None].expand(-1, 3) / 0.75)
    torch.testing.assert_close(y, x.detach() * (~dropped).float()[:, None] / 0.75)


@pytest.mark.parametrize("case, error, match", [
    (lambda x: x.bernoulli_(2.0), RuntimeError, r"bernoulli_ expects p to be in \[0, 1\]"),
    (lambda x: x.uniform_(1.0, 0.0), RuntimeError, r"uniform_ expects to return a \[from, to\) range"),
    (lambda x: x.normal_(0.0, -1.0), RuntimeError, "normal expects std >= 0.0"),
    (lambda x: x.long().uniform_(), RuntimeError, "not implemented for 'int64'"),
    (lambda x: x.uniform_(generator=torch.Generator()), NotImplementedError, "generator= is not supported"),
])
def test_random_inplace_fills_refuse_bad_arguments(case, error, match):
    with pytest.raises(error, match=match):
        thunder.jit(case)(torch.zeros(3))


def test_an_updated_input_returned_is_the_callers_tensor():
    def f(x, kv):
        x.index_copy_(0, _IDX, kv)
        return x

    x = torch.zeros(5, 4)
    out = thunder.jit(f)(x, torch.ones(2, 4))
    assert out is x
    out.mul_(3)  # as in eager, the caller's tensor changes with it
    assert x[0].tolist() == [3.0] * 4 and x[1].tolist() == [0.0] * 4

    # In a training program the result shares the input's memory (torch's autograd returns a view).
    def g(w, buf):
        buf.mul_(2)
        return w.sin(), buf

    w, buf = torch.randn(3, requires_grad=True), torch.ones(3)
    s, b = thunder.jit(g)(w, buf)
    s.sum().backward()
    assert b.data_ptr() == buf.data_ptr() and buf.tolist() == [2.0] * 3
    torch.testing.assert_close(w.grad, w.detach().cos())
