"""The `cuda_graphs=True` compile option (thunder/core/cudagraphs.py): programs replayed as CUDA graphs
give eager's results, training steps included, and every case a graph cannot serve runs normally."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from models import GPT, GPTConfig

import thunder
import thunder.examine
from thunder import _core

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# ---- without a GPU ------------------------------------------------------------------------------


def test_cpu_program_warns_at_the_users_line_and_runs_normally():
    m = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    jm = thunder.jit(m, cuda_graphs=True)
    x = torch.randn(4, 8, requires_grad=True)
    with pytest.warns(UserWarning, match="runs without a CUDA graph: input '.*' is a cpu tensor") as w:
        y = jm(x)
    assert w[0].filename == __file__
    y.sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    m(x2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    assert thunder.examine.cuda_graphs(jm) is None
    with torch.no_grad(), pytest.warns(UserWarning, match="the program runs without a CUDA graph"):
        torch.testing.assert_close(jm(x), m(x))


def test_compile_reduce_overhead_plugin_sets_cuda_graphs():
    m = torch.nn.Linear(4, 2)
    jm = thunder.compile(m, plugins="reduce-overhead")
    assert jm._cfn._thunder_options["cuda_graphs"] is True
    # An explicit option wins over the plugin's.
    jm = thunder.compile(m, plugins=["reduce-overhead"], cuda_graphs=False)
    assert jm._cfn._thunder_options["cuda_graphs"] is False
    with pytest.raises(ValueError, match=r"unknown plugin\(s\) \['fp9'\]; available plugins: \['reduce-overhead'\]"):
        thunder.compile(m, plugins=["reduce-overhead", "fp9"])


def test_cuda_graph_transform_sets_the_option_and_other_transforms_are_refused():
    m = torch.nn.Linear(4, 2)
    jm = thunder.jit(m, transforms=[thunder.transforms.CUDAGraphTransform()])
    assert jm._cfn._thunder_options["cuda_graphs"] is True
    with pytest.warns(UserWarning, match="runs without a CUDA graph"), torch.no_grad():
        torch.testing.assert_close(jm(torch.ones(3, 4)), m(torch.ones(3, 4)))
    with pytest.raises(NotImplementedError, match="is not a thunder transform"):
        thunder.jit(m, transforms=[object()])


def test_plan_names_fuse_randoms_host_state():
    # The plan of a CPU program is blocked by its first input already; the C++ test covers CUDA traces.
    def f(x):
        return F.dropout(x, 0.5) * 2

    jf = thunder.jit(f, fuse_random=True)
    with torch.no_grad():
        jf(torch.randn(64))
    plan = _core.plan_cuda_graph(thunder.last_traces(jf)[-1])
    assert "cpu tensor" in plan["blocker"] and plan["device"] == -1 and plan["written_inputs"] == []


# ---- on CUDA ------------------------------------------------------------------------------------


def _stats(jfn, program):
    return thunder.examine.cuda_graphs(jfn)[program]


@requires_cuda
def test_inference_replays_and_outputs_survive_later_replays():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.LayerNorm(256),
                            torch.nn.Linear(256, 64)).cuda()
    jm = thunder.jit(m, cuda_graphs=True)
    xs = [torch.randn(8, 64, device="cuda") for _ in range(6)]
    with torch.no_grad():
        outs = [jm(x) for x in xs]
        for x, out in zip(xs, outs):  # every output keeps its own values
            torch.testing.assert_close(out, m(x))
    s = _stats(jm, "program")
    assert s["captures"] == 1 and s["replays"] == 5 and s["normal_runs"] == 1 and s["failed"] is None


@requires_cuda
def test_inference_writes_inputs_in_place_at_their_address():
    def f(x, acc):
        acc.add_(x)
        return acc * 2

    jf = thunder.jit(f, cuda_graphs=True)
    acc = torch.zeros(16, device="cuda")
    ref = torch.zeros(16, device="cuda")
    for i in range(5):
        x = torch.full((16,), float(i + 1), device="cuda")
        out = jf(x, acc)
        ref.add_(x)
        torch.testing.assert_close(acc, ref)
        torch.testing.assert_close(out, ref * 2)
    assert _stats(jf, "program")["replays"] == 4


def _gpt(dropout=0.0, attention="sdpa"):
    torch.manual_seed(0)
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=32, vocab_size=128, dropout=dropout,
                    attention=attention)
    return GPT(cfg).cuda()


def _batch(seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    idx = torch.randint(0, 128, (4, 32), device="cuda", generator=g)
    tgt = torch.randint(0, 128, (4, 32), device="cuda", generator=g)
    return idx, tgt


@requires_cuda
@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_training_steps_match_eager(attention):
    model = _gpt(attention=attention)
    ref = copy.deepcopy(model)
    jm = thunder.jit(model, cuda_graphs=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
    losses = []
    for step in range(5):
        idx, tgt = _batch(step)  # a new input tensor every step: copied into the graph's buffer
        _, loss = jm(idx, tgt)
        loss.backward()
        _, ref_loss = ref(idx, tgt)
        ref_loss.backward()
        torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5)
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5, msg=f"step {step}: {name}")
        losses.append((loss, ref_loss.detach()))
        opt.step()
        ref_opt.step()
        opt.zero_grad(set_to_none=True)
        ref_opt.zero_grad(set_to_none=True)
    for loss, ref_loss in losses:  # the losses handed out are copies, not the graph's output
        torch.testing.assert_close(loss.detach(), ref_loss, rtol=1e-4, atol=1e-5)
    fwd, bwd = _stats(jm, "forward"), _stats(jm, "backward")
    assert fwd["captures"] == 1 and fwd["replays"] == 4 and fwd["failed"] is None, fwd
    assert bwd["captures"] == 1 and bwd["replays"] == 4 and bwd["failed"] is None, bwd


@requires_cuda
def test_gradient_accumulation_and_two_forwards_before_a_backward():
    model = _gpt()
    ref = copy.deepcopy(model)
    jm = thunder.jit(model, cuda_graphs=True)
    for step in range(3):  # accumulate, no zero_grad
        idx, tgt = _batch(step)
        jm(idx, tgt)[1].backward()
        ref(idx, tgt)[1].backward()
    # Two forwards, then one backward through both: the second cannot reuse the graph's saved tensors.
    (a, b) = _batch(10), _batch(11)
    (jm(*a)[1] + jm(*b)[1]).backward()
    (ref(*a)[1] + ref(*b)[1]).backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5)
    assert _stats(jm, "forward")["replays"] >= 2


@requires_cuda
def test_retained_graph_keeps_its_saved_tensors():
    model = _gpt()
    ref = copy.deepcopy(model)
    jm = thunder.jit(model, cuda_graphs=True)
    for step in range(2):  # warm-up run, then capture
        idx, tgt = _batch(step)
        jm(idx, tgt)[1].backward()
        ref(idx, tgt)[1].backward()
    idx, tgt = _batch(5)
    loss = jm(idx, tgt)[1]  # a replay
    ref_loss = ref(idx, tgt)[1]
    loss.backward(retain_graph=True)
    ref_loss.backward(retain_graph=True)
    other = _batch(6)
    jm(*other)[1].backward()  # must not overwrite the retained replay's saved tensors
    ref(*other)[1].backward()
    loss.backward()
    ref_loss.backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5)


@requires_cuda
def test_dropout_draws_new_masks_at_every_replay():
    def f(x, w):
        return F.dropout(x * w, 0.5)

    jf = thunder.jit(f, cuda_graphs=True)
    x = torch.ones(4096, device="cuda", requires_grad=True)
    w = torch.ones(4096, device="cuda", requires_grad=True)
    masks = []
    for _ in range(4):
        y = jf(x, w)
        g = torch.randn_like(y)
        y.backward(g)
        kept = y.detach() != 0
        masks.append(kept)
        torch.testing.assert_close(y.detach(), kept * 2.0)
        torch.testing.assert_close(x.grad, g * kept * 2.0)  # the backward used this replay's mask
        assert 0.4 < kept.float().mean().item() < 0.6
        x.grad = w.grad = None
    assert all(not torch.equal(masks[i], masks[j]) for i in range(4) for j in range(i))
    assert _stats(jf, "forward")["replays"] == 3


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_programs_on_the_second_device_are_captured_there():
    # cuda:0 stays current: the graphs are captured on cuda:1's stream, with its generator.
    model = _gpt().to("cuda:1")
    ref = copy.deepcopy(model)
    jm = thunder.jit(model, cuda_graphs=True)
    jdrop = thunder.jit(lambda x: F.dropout(x * 1.0, 0.5), cuda_graphs=True)
    assert torch.cuda.current_device() == 0
    masks = []
    for step in range(4):
        idx, tgt = (t.to("cuda:1") for t in _batch(step))
        _, loss = jm(idx, tgt)
        loss.backward()
        assert torch.cuda.current_device() == 0, f"step {step}"
        _, ref_loss = ref(idx, tgt)
        ref_loss.backward()
        torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5)
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5, msg=f"step {step}: {name}")
        model.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
        with torch.no_grad():
            y = jdrop(torch.ones(4096, device="cuda:1"))
        kept = y != 0
        torch.testing.assert_close(y, kept * 2.0)
        masks.append(kept)
    assert all(not torch.equal(masks[i], masks[j]) for i in range(4) for j in range(i))
    for stats in (_stats(jm, "forward"), _stats(jm, "backward"), _stats(jdrop, "program")):
        assert stats["captures"] == 1 and stats["replays"] == 3 and stats["failed"] is None, stats
    assert torch.cuda.current_device() == 0
    torch.rand(4, device="cuda:0"), torch.rand(4, device="cuda:1")  # both generators still usable


@requires_cuda
def test_moved_parameter_is_captured_again():
    m = torch.nn.Linear(32, 32).cuda()
    jm = thunder.jit(m, cuda_graphs=True)
    x = torch.randn(4, 32, device="cuda")
    with torch.no_grad():
        for _ in range(3):
            torch.testing.assert_close(jm(x), m(x))
        m.weight.data = torch.randn(32, 32, device="cuda")  # a new address
        for _ in range(2):
            torch.testing.assert_close(jm(x), m(x))
    s = _stats(jm, "program")
    assert s["captures"] == 2 and s["failed"] is None


@requires_cuda
def test_fuse_random_is_not_replayed_and_says_why():
    def f(x):
        return F.dropout(x, 0.5) * 2

    jf = thunder.jit(f, cuda_graphs=True, fuse_random=True)
    x = torch.randn(1024, device="cuda", requires_grad=True)
    with pytest.warns(UserWarning, match="philox_state.*fuse_random=True"):
        y = jf(x)
    y.sum().backward()
    kept = y.detach() != 0
    torch.testing.assert_close(x.grad, kept * 4.0)
    assert thunder.examine.cuda_graphs(jf) is None


@requires_cuda
def test_capture_failure_falls_back_with_a_warning():
    def f(x):
        return torch.sin(x) * 2

    jf = thunder.jit(f, cuda_graphs=True)
    x = torch.randn(64, device="cuda")
    with torch.no_grad():
        jf(x)  # the normal run
        runner = thunder.compile_stats(jf)._info().cuda_graphs.runner
        run = runner.run
        runner.run = lambda ins: (torch.cuda.synchronize(), run(ins))[1]  # not allowed while capturing
        with pytest.warns(UserWarning, match="capturing it failed"):
            torch.testing.assert_close(jf(x), torch.sin(x) * 2)
        runner.run = run
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            torch.testing.assert_close(jf(x + 1), torch.sin(x + 1) * 2)
    s = _stats(jf, "program")
    assert s["replays"] == 0 and "capturing it failed" in s["failed"]
    # torch's random numbers still work, from where they were.
    torch.cuda.manual_seed(3)
    a = torch.randn(8, device="cuda")
    torch.testing.assert_close(F.dropout(torch.ones(64, device="cuda"), 0.5).sum() % 2, torch.tensor(0.0, device="cuda"))
    torch.cuda.manual_seed(3)
    torch.testing.assert_close(torch.randn(8, device="cuda"), a)
