"""torch.autocast around a jitted call and inside a traced function: thunder computes what eager
computes under autocast (dtypes and values), records the casts in the trace, and keys its cache on
the autocast state."""

import copy

import pytest
import torch
import torch.nn.functional as F

import thunder

CUDA = torch.cuda.is_available()


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4 * 6 * 6, 10)

    def forward(self, x, target):
        h = torch.relu(self.conv(x))
        logits = self.fc(h.flatten(1))
        probs = torch.softmax(logits, -1)  # not on the CPU lists: stays in the autocast dtype
        return logits, probs, F.cross_entropy(logits, target)  # float32 on the CPU list


def _inputs():
    torch.manual_seed(0)
    return torch.randn(2, 3, 8, 8), torch.tensor([1, 7])


def _same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        torch.testing.assert_close(g, w)


def test_autocast_around_a_jitted_module_matches_eager():
    m = Net()
    jm = thunder.jit(m)
    x, t = _inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = m(x, t)
        got = jm(x, t)
    assert want[0].dtype == torch.bfloat16 and want[2].dtype == torch.float32
    _same(got, want)
    source = str(thunder.last_traces(jm)[-1])
    assert "torch.bfloat16" in source  # the casts are explicit in the trace


def test_autocast_inside_the_traced_function_matches_eager():
    w = torch.randn(8, 8)

    def f(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = x @ w
            z = torch.nn.functional.linear(y, w)
            s = z.sum()
        return y, z, s, (z.float() * 2)

    x = torch.randn(4, 8)
    jf = thunder.jit(f)
    _same(jf(x, w), f(x, w))


def test_autocast_state_is_part_of_the_cache_key():
    m = Net()
    jm = thunder.jit(m)
    x, t = _inputs()
    with torch.no_grad():
        _same(jm(x, t), m(x, t))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _same(jm(x, t), m(x, t))
        _same(jm(x, t), m(x, t))  # back to the float32 program
        with torch.autocast("cpu", dtype=torch.float16):
            _same(jm(x, t), m(x, t))
    assert thunder.cache_misses(jm) == 3
    assert thunder.cache_hits(jm) == 1
    assert "check_autocast('cpu', torch.float16)" in str(thunder.last_prologue_traces(jm)[-1])


def test_autocast_disabled_region_inside_an_enabled_one():
    def f(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = x @ w
            with torch.autocast("cpu", enabled=False):
                b = x @ w
        return a, b

    x, w = torch.randn(3, 5), torch.randn(5, 2)
    _same(thunder.jit(f)(x, w), f(x, w))


def test_training_under_autocast_matches_eager_gradients():
    torch.manual_seed(0)
    m = Net()
    e = Net()
    e.load_state_dict(m.state_dict())
    jm = thunder.jit(m)
    x, t = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = jm(x, t)[2]
        eloss = e(x, t)[2]
    assert loss.dtype == eloss.dtype == torch.float32
    torch.testing.assert_close(loss, eloss)
    loss.backward()
    eloss.backward()
    for (name, p), (_, q) in zip(m.named_parameters(), e.named_parameters()):
        assert p.grad.dtype == q.grad.dtype
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def _bf16_training_matches_eager(m, x, steps):
    """`steps` forward and backward runs of thunder.jit(m) and of a copy of m under CPU bf16 autocast:
    outputs and accumulated gradients as eager's. Returns the jitted module."""
    e = copy.deepcopy(m)
    jm = thunder.jit(m)
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, eout = jm(x), e(x)
        torch.testing.assert_close(out, eout)
        out.float().square().sum().backward()
        eout.float().square().sum().backward()
    for (name, p), q in zip(m.named_parameters(), e.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    return jm


def test_training_groups_the_weight_casts_into_multi_tensor_copies():
    # Autocast's casts run as multi-tensor copies, not one kernel per parameter; the gradients stay
    # eager's.
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32), torch.nn.GELU(),
                            torch.nn.Linear(32, 4))
    jm = _bf16_training_matches_eager(m, torch.randn(8, 16), steps=2)
    # The forward casts the parameters in one group; the backward casts the weights' bf16 gradients
    # back to float32 in another. It reads the forward's bf16 weights: values this small are saved
    # rather than cast again (test_training_casts_large_weights_again_in_the_backward).
    for trace, groups in ((thunder.last_traces(jm)[-1], 1), (thunder.last_backward_traces(jm)[-1], 1)):
        src = str(trace)
        top = [line for line in src.splitlines() if line.startswith("  ") and not line.startswith("   ")]
        assert sum("convert_tensors(" in line for line in top) == groups, src
        assert not any("ltorch_to(" in line or "convert_element_type(" in line for line in top), src


def test_training_casts_large_weights_again_in_the_backward():
    # A bf16 copy of a weight of 4096 elements or more is not saved for the backward: the backward
    # casts the weight again, the casts in one multi-tensor copy; the small biases' copies are not
    # read by the backward at all. Gradients as eager's.
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 64))
    jm = _bf16_training_matches_eager(m, torch.randn(8, 64), steps=1)
    bwd = str(thunder.last_backward_traces(jm)[-1])
    top = [line for line in bwd.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    casts = [line for line in top if "convert_tensors(" in line]
    assert len(casts) == 2, bwd  # the weights again; the gradients back to float32
    again = [c for c in casts if "torch.bfloat16)" in c]
    assert len(again) == 1 and "bf16[128, 64]" in again[0] and "bf16[64, 128]" in again[0], bwd


def test_program_runs_with_autocast_off_and_restores_it():
    jf = thunder.jit(lambda x: torch.exp(x @ x))
    x = torch.randn(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        jf(x)
        assert torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_matches_eager(dtype):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.LayerNorm(64)).cuda()
    x = torch.randn(8, 64, device="cuda")

    def f(x):
        h = m(x)
        return h, torch.softmax(h, -1), h.exp().sum(), torch.log_softmax(h, -1, dtype=torch.float64)

    jf = thunder.jit(f)
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        got, want = jf(x), f(x)
    # Dtypes exactly as eager's. Values: on CUDA, fused kernels keep float32 between the operations
    # they fuse and round once at the store, where eager rounds each low-precision result; the
    # float32 results downstream differ by about the low-precision dtype's resolution.
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {"rtol": 4e-3, "atol": 4e-3}
    for g, w in zip(got, want):
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        torch.testing.assert_close(g, w, **tol)


class _Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.rnn = torch.nn.LSTM(8, 6, batch_first=True)

    def forward(self, x):
        out, weights = self.attn(x, x, x, need_weights=True)
        return out, weights, self.rnn(out)[0]


def test_torch_calls_without_a_rule_cast_inside_themselves_as_in_eager():
    # multi_head_attention_forward (a Python composite) and the LSTM's kernel run as torch calls: under
    # autocast they cast inside themselves as eager does (bf16 outputs, not float32), their dtypes
    # known while tracing, and their gradients are eager's.
    torch.manual_seed(0)
    ref = _Attention()
    mod = copy.deepcopy(ref)
    jm = thunder.jit(mod)
    x = torch.randn(2, 5, 8)
    xr, xj = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = ref(xr), jm(xj)
    _same(got, want)
    cot = [torch.randn_like(w) for w in want]
    torch.autograd.backward(want, cot)
    torch.autograd.backward(got, cot)
    torch.testing.assert_close(xj.grad, xr.grad)
    for (name, pr), pj in zip(ref.named_parameters(), mod.parameters()):
        torch.testing.assert_close(pj.grad, pr.grad, msg=name)
    src = str(thunder.last_traces(jm)[0])  # as captured
    assert "autocast_cpu_bfloat16.multi_head_attention_forward(" in src
    assert "import autocast" not in src and "# autocast_cpu_bfloat16: not a Python module" in src
    assert "__get__" not in src  # is_nested is answered while tracing, not recorded
    # Without autocast the same module records the plain torch call, in float32.
    out = jm(x)
    assert out[0].dtype == torch.float32 and "autocast_cpu" not in str(thunder.last_traces(jm)[-1])


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_torch_calls_without_a_rule_cast_inside_themselves_as_in_eager(dtype):
    # The same on CUDA: the opaque calls run under CUDA autocast, as traced.
    torch.manual_seed(0)
    ref = _Attention().cuda()
    mod = copy.deepcopy(ref)
    jm = thunder.jit(mod)
    x = torch.randn(2, 5, 8, device="cuda")
    xr, xj = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cuda", dtype=dtype):
        want, got = ref(xr), jm(xj)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        torch.testing.assert_close(g, w, rtol=2e-2, atol=2e-2)
    cot = [torch.randn_like(w) for w in want]
    torch.autograd.backward(want, cot)
    torch.autograd.backward(got, cot)
    torch.testing.assert_close(xj.grad, xr.grad, rtol=2e-2, atol=2e-2)
    for (name, pr), pj in zip(ref.named_parameters(), mod.parameters()):
        torch.testing.assert_close(pj.grad, pr.grad, rtol=2e-2, atol=2e-2, msg=name)
    src = str(thunder.last_traces(jm)[0])
    assert f"autocast_cuda_{str(dtype).removeprefix('torch.')}.multi_head_attention_forward(" in src
