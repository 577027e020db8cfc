"""torch.autograd integration of jitted callables: thunder's forward and backward programs behind a
torch.autograd.Function behave like eager PyTorch for every way a training loop uses them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import thunder

EXECUTORS = ["torch"]


def jit(fn, **kw):
    return thunder.jit(fn, executors=EXECUTORS, **kw)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 3))


def _clone_grads(model):
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def test_loss_backward_matches_eager_and_uses_thunder_backward():
    model = _mlp()
    jmodel = jit(model)
    x = torch.randn(4, 6)
    jmodel(x).sum().backward()
    got = _clone_grads(model)
    model.zero_grad()
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad)
    bwd = thunder.last_backward_traces(jmodel)
    assert bwd and "def backward(" in str(bwd[-1])
    assert "grad_fn" not in str(thunder.last_traces(jmodel)[-1])


def test_torch_autograd_grad():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(4, 2, requires_grad=True)
    f = lambda x, w: torch.tanh(x @ w).sum()
    gx, gw = torch.autograd.grad(jit(f)(x, w), (x, w))
    ex, ew = torch.autograd.grad(f(x, w), (x, w))
    torch.testing.assert_close(gx, ex)
    torch.testing.assert_close(gw, ew)


def test_gradient_accumulation_over_several_calls():
    model = _mlp()
    jmodel = jit(model)
    xs = [torch.randn(4, 6) for _ in range(3)]
    for x in xs:
        jmodel(x).pow(2).sum().backward()
    got = _clone_grads(model)
    model.zero_grad()
    for x in xs:
        model(x).pow(2).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad)
    assert thunder.cache_misses(jmodel) == 1


def test_retain_graph_allows_a_second_backward():
    x = torch.randn(5, requires_grad=True)
    y = jit(lambda x: (x.exp() * x).sum())(x)
    y.backward(retain_graph=True)
    first = x.grad.clone()
    y.backward()
    torch.testing.assert_close(x.grad, 2 * first)


def test_backward_twice_without_retain_graph_raises_like_eager():
    x = torch.randn(5, requires_grad=True)
    y = jit(lambda x: (x.exp() * x).sum())(x)
    y.backward()
    with pytest.raises(RuntimeError):
        y.backward()


def test_outputs_that_do_not_require_grad():
    def f(x, c):
        return x * 2, c + 1  # c does not require grad: its output neither

    x = torch.randn(3, requires_grad=True)
    c = torch.randn(3)
    a, b = jit(f)(x, c)
    assert a.requires_grad and not b.requires_grad
    a.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 2.0))


def test_unused_output_gets_no_cotangent():
    x = torch.randn(3, requires_grad=True)
    _, b = jit(lambda x: (x.sin(), x.cos()))(x)
    b.sum().backward()
    torch.testing.assert_close(x.grad, -x.detach().sin())


def test_integer_and_bool_outputs_are_not_differentiable():
    def f(x):
        return x.argmax(), x > 0, (x * 3).sum()

    x = torch.randn(6, requires_grad=True)
    am, mask, s = jit(f)(x)
    assert am.dtype == torch.int64 and not am.requires_grad
    assert mask.dtype == torch.bool and not mask.requires_grad
    s.backward()
    torch.testing.assert_close(x.grad, torch.full((6,), 3.0))


def test_inputs_mixing_requires_grad():
    x = torch.randn(3, 4, requires_grad=True)
    y = torch.randn(3, 4)
    out = jit(lambda x, y: (x * y).sum())(x, y)
    out.backward()
    torch.testing.assert_close(x.grad, y)
    assert y.grad is None


def test_requires_grad_false_parameters_get_no_grad():
    model = _mlp()
    model[0].weight.requires_grad_(False)
    jmodel = jit(model)
    jmodel(torch.randn(2, 6)).sum().backward()
    assert model[0].weight.grad is None
    assert model[0].bias.grad is not None and model[2].weight.grad is not None


def test_requires_grad_change_recompiles():
    model = _mlp()
    jmodel = jit(model)
    x = torch.randn(2, 6)
    jmodel(x).sum().backward()
    model[2].weight.requires_grad_(False)
    model.zero_grad()
    jmodel(x).sum().backward()
    assert model[2].weight.grad is None
    assert thunder.cache_misses(jmodel) == 2


def test_no_grad_runs_the_inference_trace():
    model = _mlp()
    jmodel = jit(model)
    with torch.no_grad():
        out = jmodel(torch.randn(2, 6))
    assert not out.requires_grad
    assert thunder.last_backward_traces(jmodel) == []
    final = str(thunder.last_traces(jmodel)[-1])
    assert "return t" in final or "return (" in final


def test_eval_with_no_grad_is_inference_and_train_mode_trains():
    model = _mlp()
    jmodel = jit(model)
    model.eval()
    with torch.no_grad():
        jmodel(torch.randn(2, 6))
    assert thunder.last_backward_traces(jmodel) == []
    model.train()
    jmodel(torch.randn(2, 6)).sum().backward()
    assert thunder.last_backward_traces(jmodel)


def test_no_grad_block_inside_the_function():
    def f(x, w):
        with torch.no_grad():
            scale = (w * 2).sum()
        return (x * scale).sum() + (w * w).sum()

    x = torch.randn(3, requires_grad=True)
    w = torch.randn(3, requires_grad=True)
    jit(f)(x, w).backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    f(x, w).backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


def test_double_backward_is_a_clear_error():
    x = torch.randn(3, requires_grad=True)
    y = jit(lambda x: (x ** 3).sum())(x)
    with pytest.raises(RuntimeError, match="double backward"):
        (g,) = torch.autograd.grad(y, x, create_graph=True)
        g.sum().backward()


def test_op_without_gradient_rule_names_the_op_and_line():
    from thunder.extend import OperatorExecutor, deregister_executor, register_executor

    ex = OperatorExecutor("grad_rule_less_ex", version="0.1")
    register_executor(ex)
    try:
        twice = ex.register_operator("twice", meta=lambda a: torch.empty_like(a), fn=lambda a: a * 2)

        def f(x):
            return twice(x).sum()  # an operator with no gradient rule

        x = torch.randn(3, requires_grad=True)
        with pytest.raises(NotImplementedError, match=r"twice[\s\S]*test_grad_autograd.py"):
            thunder.jit(f, executors=[ex, "torch"])(x)
    finally:
        deregister_executor(ex)


def test_opaque_op_torch_cannot_differentiate_behaves_as_eager():
    def f(x):
        return torch.special.bessel_j0(x).sum()  # torch marks its output non-differentiable

    x = torch.randn(3, requires_grad=True)
    out = jit(f)(x)
    assert not out.requires_grad and not f(x).requires_grad
    torch.testing.assert_close(out, f(x))


def test_output_returned_twice_accumulates():
    x = torch.randn(3, requires_grad=True)
    a, b = jit(lambda x: (x * 2, x * 2))(x)
    (a.sum() + 3 * b.sum()).backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 8.0))


def test_dict_and_nested_outputs():
    def f(x):
        return {"loss": (x ** 2).sum(), "aux": [x.detach() + 1, (x * 2,)]}

    x = torch.randn(4, requires_grad=True)
    out = jit(f)(x)
    assert set(out) == {"loss", "aux"}
    (out["loss"] + out["aux"][1][0].sum()).backward()
    torch.testing.assert_close(x.grad, 2 * x.detach() + 2)


def test_dropout_gradient_matches_eager_with_the_same_seed():
    x = torch.randn(16, 16, requires_grad=True)
    f = lambda x: F.dropout(x, 0.4).pow(2).sum()
    torch.manual_seed(3)
    jit(f)(x).backward()
    got = x.grad.clone()
    x.grad = None
    torch.manual_seed(3)
    f(x).backward()
    torch.testing.assert_close(got, x.grad)


def test_disable_torch_autograd_runs_without_a_graph():
    x = torch.randn(3, requires_grad=True)
    out = jit(lambda x: x * 2, disable_torch_autograd=True)(x)
    assert not out.requires_grad


def test_backward_trace_prints_as_python():
    import ast

    model = _mlp()
    jmodel = jit(model)
    jmodel(torch.randn(2, 6)).sum().backward()
    for t in thunder.last_backward_traces(jmodel) + thunder.last_traces(jmodel):
        ast.parse(str(t))


@pytest.mark.parametrize("reentrant", [False, True], ids=["non_reentrant", "reentrant"])
def test_checkpoint_regions_are_recomputed_not_saved(reentrant):
    from torch.utils.checkpoint import checkpoint

    def block(x, w):
        return F.gelu(x @ w) * 2

    def f(x, w1, w2):
        h = checkpoint(block, x, w1, use_reentrant=reentrant)
        return (h @ w2).sum()

    x = torch.randn(4, 8, requires_grad=True)
    w1 = torch.randn(8, 8, requires_grad=True)
    w2 = torch.randn(8, 3, requires_grad=True)
    jf = jit(f)
    jf(x, w1, w2).backward()
    got = [t.grad.clone() for t in (x, w1, w2)]
    for t in (x, w1, w2):
        t.grad = None
    f(x, w1, w2).backward()
    for g, t in zip(got, (x, w1, w2)):
        torch.testing.assert_close(g, t.grad)
    backward = thunder.last_backward_traces(jf)[-1]
    # Only the region's inputs are saved; its matmul runs again in the backward.
    assert set(backward.input_names[:-1]) == {"x", "w1", "w2"}
    assert backward.python(False).count("torch.matmul(x, w1)") == 1


def test_backward_reads_the_value_an_input_had_before_the_forward_mutated_it():
    def f(x, buf):
        buf.add_(1)  # buf does not require grad; x's gradient reads buf's new value
        return (x * buf).sum() + (x * 0).sum()

    x = torch.randn(3, requires_grad=True)
    buf = torch.zeros(3)
    jit(f)(x, buf).backward()
    torch.testing.assert_close(buf, torch.ones(3))
    torch.testing.assert_close(x.grad, torch.ones(3))

    def g(x, buf):
        y = x * buf  # reads buf's old value
        buf.mul_(3)
        return y.sum()

    x.grad = None
    buf = torch.full((3,), 2.0)
    jit(g)(x, buf).backward()
    torch.testing.assert_close(buf, torch.full((3,), 6.0))
    torch.testing.assert_close(x.grad, torch.full((3,), 2.0))


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("kind", ["plain", "causal", "dropout"])
def test_cuda_sdpa_uses_eagers_fused_kernels_and_matches_eager(kind, dtype):
    q, k, v = (torch.randn(2, 4, 33, 64, device="cuda", dtype=dtype, requires_grad=True)
               for _ in range(3))
    p = 0.2 if kind == "dropout" else 0.0

    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=kind == "causal")

    jf = jit(f)
    g = torch.randn(2, 4, 33, 64, device="cuda", dtype=dtype)
    torch.manual_seed(5)
    got = torch.autograd.grad(jf(q, k, v), (q, k, v), g)
    torch.manual_seed(5)
    want = torch.autograd.grad(f(q, k, v), (q, k, v), g)
    tol = {} if dtype is torch.float32 else {"rtol": 1e-2, "atol": 1e-2}
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **tol)
    # float32: the memory-efficient kernel pair, as eager; otherwise eager's own kernel choice.
    fwd, bwd = (("efficient_attention", "efficient_attention_backward")
                if dtype is torch.float32 else ("sdpa_autograd_forward", "sdpa_autograd_backward"))
    assert fwd in str(thunder.last_traces(jf)[-1])
    assert bwd in str(thunder.last_backward_traces(jf)[-1])


@requires_cuda
def test_cuda_gpt_trains_like_eager():
    import copy

    from models import GPT, GPTConfig

    cfg = GPTConfig(n_embd=64, n_head=4, block_size=32)
    torch.manual_seed(0)
    model = GPT(cfg).cuda()
    twin = copy.deepcopy(model)
    jmodel = jit(twin)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    jopt = torch.optim.AdamW(twin.parameters(), lr=1e-3)
    for step in range(5):
        idx = torch.randint(0, cfg.vocab_size, (2, cfg.block_size), device="cuda")
        tgt = torch.randint(0, cfg.vocab_size, (2, cfg.block_size), device="cuda")
        loss, jloss = model(idx, tgt)[1], jmodel(idx, tgt)[1]
        opt.zero_grad()
        jopt.zero_grad()
        loss.backward()
        jloss.backward()
        opt.step()
        jopt.step()
        assert abs(loss.item() - jloss.item()) <= 1e-5 * abs(loss.item())


def test_gradient_flows_through_a_copy_into_a_buffer():
    def f(y, buf):
        buf.copy_(y * 2)
        return buf * 3

    y = torch.randn(3, requires_grad=True)
    buf = torch.zeros(3)
    jit(f)(y, buf).sum().backward()
    torch.testing.assert_close(y.grad, torch.full((3,), 6.0))
    torch.testing.assert_close(buf, 2 * y.detach())


def test_decomposed_backward_defines_each_value_once():
    # clamp's backward holds clamp recomputed (for the gradient of the product) beside its own
    # maximum(x, lo) recomputed for the gradient rule: decomposed to primitives, both define that
    # value; it is computed once.
    def fn(a, b):
        return torch.clamp(torch.sin(a), -0.5, 0.5) * b

    ta = [torch.randn(48, 64).requires_grad_() for _ in range(2)]
    ea = [t.detach().clone().requires_grad_() for t in ta]
    jfn = thunder.jit(fn, decompose_to_prims=True)
    jfn(*ta).sum().backward()
    fn(*ea).sum().backward()
    for got, want in zip(ta, ea):
        torch.testing.assert_close(got.grad, want.grad)
    defined = [line.split("=")[0].strip() for line in str(thunder.last_backward_traces(jfn)[-1]).splitlines()
               if line.startswith("  t") and "=" in line]
    assert defined and len(defined) == len(set(defined)), defined
