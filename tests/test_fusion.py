"""thunder's fusion executor on the CPU: fused regions against eager (pointwise chains with broadcasts
and transposed inputs, softmax, log_softmax, layer_norm, rms_norm, cross-entropy, bias gradients),
edge sizes, bf16 roundings as eager's kernels do them, the trace's fusion symbols, the generated source,
the default-executor policy (on by default, off with THUNDER_FUSION=0, small CPU regions left to torch)
and the disk cache (corrupted, truncated and foreign entries rebuilt; concurrent processes)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.executors import fusionex

from fusion_patterns import bias_grad, gelu_chain, layer_norm, log_softmax, norm_values_and_grads_match, rms_norm, softmax  # noqa: F401

pytestmark = pytest.mark.skipif(not fusionex.available("cpu"), reason="no C++ compiler")

# Fuses every region, however small (the default executor leaves tiny CPU regions to torch).
FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fusion_all", min_cpu_numel=0))
# The default executors' fuser: CPU regions of fewer than 4096 elements are left to torch.
FUSE_DEFAULT_SIZE = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fusion_default_size",
                                                                                    min_cpu_numel=4096))


def _jit(fn):
    return thunder.jit(fn, executors=[FUSE_ALL])


SHAPES = [(4, 8), (33, 1027), (1, 1), (0, 5), (64, 4096)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fn", [gelu_chain, softmax, log_softmax, layer_norm, rms_norm, bias_grad],
                         ids=lambda f: f.__name__)
def test_fused_matches_eager_fp32(fn, shape):
    torch.manual_seed(0)
    x, w, b = torch.randn(shape), torch.randn(shape[-1]), torch.randn(shape[-1])
    args = {gelu_chain: (x, w, b), layer_norm: (x, w, b), rms_norm: (x, w)}.get(fn, (x,))
    torch.testing.assert_close(_jit(fn)(*args), fn(*args), equal_nan=True)


@pytest.mark.parametrize("shape", [(4, 8), (33, 1027), (1, 1)], ids=str)
def test_cross_entropy_matches_eager(shape):
    torch.manual_seed(0)
    x, y = torch.randn(shape), torch.randint(0, shape[-1], (shape[0],))
    jfn = _jit(F.cross_entropy)
    torch.testing.assert_close(jfn(x, y), F.cross_entropy(x, y))


def test_transposed_and_broadcast_inputs():
    torch.manual_seed(0)
    x = torch.randn(1027, 33).t()  # non-contiguous
    w, b = torch.randn(1027), torch.randn(1).expand(1027)  # stride-0 input
    torch.testing.assert_close(_jit(gelu_chain)(x, w, b), gelu_chain(x, w, b))


def test_nan_and_inf_propagate_like_eager():
    x = torch.tensor([[1.0, float("nan"), 2.0], [float("inf"), 0.0, -1.0], [-float("inf"), 1.0, 2.0]])
    for fn in (softmax, lambda t: torch.maximum(t * 2, t + 1) - 1):
        torch.testing.assert_close(_jit(fn)(x), fn(x), equal_nan=True)
    # eager's sign is (0 < x) - (x < 0): 0 at NaN, not NaN
    sign = lambda t: torch.sign(t * 2) - 1
    torch.testing.assert_close(_jit(sign)(x[:, :2]), sign(x[:, :2]), equal_nan=True)
    assert _jit(sign)(x[:, :2])[0, 1].item() == -1.0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_low_and_high_precision(dtype):
    # Fused kernels compute bf16/fp16 values in fp32 and round where eager rounds: after each torch
    # operation of the chain (the decomposition's conversions), once at the end of layer_norm.
    torch.manual_seed(0)
    x, w, b = (torch.randn(16, 300).to(dtype), torch.randn(300).to(dtype), torch.randn(300).to(dtype))
    for fn in (gelu_chain, layer_norm):
        torch.testing.assert_close(_jit(fn)(x, w, b), fn(x, w, b))


def test_integer_and_bool_ops():
    a = torch.randint(-50, 50, (7, 9))
    fn = lambda t: torch.where(t > 0, t * 3 - 1, t & 7) + (t == 2).to(torch.int64)  # noqa: E731
    torch.testing.assert_close(_jit(fn)(a), fn(a))


def test_trace_shows_fusion_symbols_and_source():
    x, w, b = torch.randn(4, 8), torch.randn(8), torch.randn(8)
    jfn = _jit(gelu_chain)
    jfn(x, w, b)
    final = str(thunder.last_traces(jfn)[-1])
    assert "fusion_all0(" in final and "# t" in final and "prims.erf" in final
    src = thunder.fusion_source(jfn, 0)
    assert "thunder_kernel" in src and "erff" in src


def test_softmax_is_one_kernel():
    jfn = _jit(softmax)
    jfn(torch.randn(8, 16))
    assert len(fusionex.fusion_kernels(jfn)) == 1


def test_single_elementwise_op_is_left_to_torch():
    jfn = _jit(lambda a, b: a + b)
    jfn(torch.randn(4), torch.randn(4))
    assert fusionex.fusion_kernels(jfn) == []


def _cache_env(tmp_path):
    import os
    import sys

    env = dict(os.environ, THUNDER_CACHE_DIR=str(tmp_path), THUNDER_FUSION_MIN_NUMEL="0")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + sys.path)
    return env


_CACHE_CODE = (
    "import torch, thunder\n"
    "from thunder.executors import fusionex\n"
    "x = torch.randn(3, 5)\n"
    "for k in (3, 4):\n"
    "    j = thunder.jit(lambda x: torch.softmax(x * k, -1), executors=[thunder.fusion_executor])\n"
    "    torch.testing.assert_close(j(x), torch.softmax(x * k, -1))\n"
    "print(fusionex.cache_stats())\n"
)


def _run_cache_code(tmp_path):
    import ast
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _CACHE_CODE], env=_cache_env(tmp_path),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_bad_cache_entries_are_rebuilt(tmp_path):
    import glob
    import os
    import shutil

    first = _run_cache_code(tmp_path)
    assert (first["compiles"], first["disk_hits"]) == (2, 0)
    assert oct(os.stat(tmp_path / "kernels").st_mode & 0o777) == "0o700"
    second = _run_cache_code(tmp_path)
    assert (second["compiles"], second["disk_hits"], second["rejected"]) == (0, 2, 0)
    entry, other = sorted(glob.glob(str(tmp_path / "kernels" / "cpu-*.so")))

    def expect_rebuilt():
        stats = _run_cache_code(tmp_path)
        assert (stats["compiles"], stats["disk_hits"], stats["rejected"]) == (1, 1, 1)

    with open(entry, "r+b") as f:  # truncated
        f.truncate(os.path.getsize(entry) // 2)
    expect_rebuilt()
    with open(entry, "r+b") as f:  # same size, one byte of the code changed
        f.seek(os.path.getsize(entry) // 3)
        f.write(b"\xcc")
    expect_rebuilt()
    shutil.copyfile(other, entry)  # foreign: a whole, valid entry of another kernel
    expect_rebuilt()


def test_concurrent_processes_share_one_compile(tmp_path):
    import ast
    import glob
    import subprocess
    import sys

    env = _cache_env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", _CACHE_CODE], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate() for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    stats = [ast.literal_eval(out.strip().splitlines()[-1]) for out, _ in outs]
    # The lock around a build: each kernel is compiled by one process, the others load its entry.
    assert sum(s["compiles"] for s in stats) == 2
    assert sum(s["disk_hits"] for s in stats) == 4
    assert all(s["rejected"] == 0 for s in stats)
    files = glob.glob(str(tmp_path / "kernels" / "cpu-*"))
    assert len(files) == 2 and all(f.endswith(".so") for f in files)  # no temporary files left


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_log_softmax_matches_eager(dtype):
    # Eager's CPU kernel rounds the row's sum of exponentials and its log to the input dtype; the
    # decomposition does too, and the fused kernel keeps those roundings.
    torch.manual_seed(0)
    x = (torch.randn(64, 37) * 5).to(dtype)
    torch.testing.assert_close(_jit(log_softmax)(x), log_softmax(x), rtol=0, atol=0)


def test_explicit_rounding_is_kept_in_a_fused_region():
    torch.manual_seed(0)
    x = torch.randn(8, 300)
    fn = lambda t: (t * 1.001).to(torch.bfloat16).to(torch.float32) * 3.0 - t  # noqa: E731
    torch.testing.assert_close(_jit(fn)(x), fn(x), rtol=0, atol=0)


def test_softmax_divides_by_a_row_reciprocal():
    jfn = _jit(softmax)
    jfn(torch.randn(8, 16))
    src = thunder.fusion_source(jfn, 0)
    assert "rcp" in src and " / red" not in src


def test_default_executors_include_fusion_unless_disabled():
    import os
    import subprocess
    import sys

    names = [e.name for e in thunder.get_default_executors()]
    assert ("fusion" in names) == (os.environ.get("THUNDER_FUSION", "1") != "0")
    code = "import thunder; print([e.name for e in thunder.get_default_executors()])"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path), THUNDER_FUSION="0")
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert off.returncode == 0 and "'fusion'" not in off.stdout, off.stderr


def test_small_cpu_regions_are_left_to_torch():
    ex = fusionex.ThunderFusionExecutor("fusion_min_1000", min_cpu_numel=1000)
    thunder.extend.register_executor(ex)
    small = thunder.jit(softmax, executors=[ex])
    small(torch.randn(8, 16))
    assert fusionex.fusion_kernels(small) == []
    large = thunder.jit(softmax, executors=[ex])
    x = torch.randn(8, 128)
    torch.testing.assert_close(large(x), softmax(x))
    assert len(fusionex.fusion_kernels(large)) == 1


def test_kernels_of_one_program_compile_once_each():
    # Several kernels of one program: built in the background while the program is made, each once.
    torch.manual_seed(0)
    fn = lambda x, w: (torch.softmax(x * w, -1).sum(0) + 1).exp()  # noqa: E731
    x, w = torch.randn(40, 50), torch.randn(50)
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(x, w), fn(x, w))
    torch.testing.assert_close(jfn(x, w), fn(x, w))


def test_inference_under_no_grad_fuses_parameters_and_training_keeps_gradients():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.LayerNorm(128), torch.nn.GELU())
    x = torch.randn(32, 64)
    with torch.no_grad():
        jm = thunder.jit(m, executors=[FUSE_ALL])
        torch.testing.assert_close(jm(x), m(x))
    assert fusionex.fusion_kernels(jm)  # the parameters require grad; nothing records a graph here
    jm = thunder.jit(m, executors=[FUSE_ALL])
    jm(x).sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m(x).sum().backward()
    for g, p in zip(grads, m.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_enable_grad_inside_a_no_grad_call_keeps_autograd():
    # The plain program runs that region under torch's autograd: tensors needing grad stay with torch.
    def fn(x, w):
        with torch.enable_grad():
            y = torch.softmax(x * w, -1) * 2
        return y

    x, w = torch.randn(64, 128), torch.randn(128, requires_grad=True)
    with torch.no_grad():
        out = thunder.jit(fn, executors=[FUSE_ALL])(x, w)
        ref = fn(x, w)
    assert out.requires_grad and ref.requires_grad
    out.sum().backward()
    g = w.grad.clone()
    w.grad = None
    ref.sum().backward()
    torch.testing.assert_close(g, w.grad)


def test_jitting_a_fused_region_again_reuses_its_kernel():
    from thunder import _core

    x = torch.randn(16, 32)
    _jit(softmax)(x)
    base = _core.live_objects()
    kernels = {id(fusionex.fusion_kernels(j)[0]) for j in [_jit(softmax) for _ in range(5)] if j(x) is not None}
    assert _core.live_objects() == base and len(kernels) == 1


def test_process_exits_cleanly_while_a_kernel_compiles_in_the_background(tmp_path):
    import subprocess
    import sys

    # The first call runs on transposed inputs; the contiguous variant, started in the background when
    # the program was made, is still compiling when the interpreter exits.
    code = ("import torch, thunder\n"
            "j = thunder.jit(lambda x: torch.softmax(x * 2, -1) + 1, executors=[thunder.fusion_executor])\n"
            "x = torch.randn(300, 200).t()\n"
            "torch.testing.assert_close(j(x), torch.softmax(x * 2, -1) + 1)\n")
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], env=_cache_env(tmp_path), capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr


def test_unrelated_outputs_do_not_share_a_kernel_domain():
    # One kernel over both would iterate over the product of their sizes.
    a, b = torch.randn(3000), torch.randn(50, 70)
    fn = lambda a, b: (a * 2 + 1, (b.exp() - 1) * 3)  # noqa: E731
    jfn = _jit(fn)
    for x, y in zip(jfn(a, b), fn(a, b)):
        torch.testing.assert_close(x, y)
    for k in fusionex.fusion_kernels(jfn):
        sizes = [int(s.rstrip("r")) for s in k.kernel_ir.split("[")[1].split("]")[0].split(", ")]
        assert torch.tensor(sizes).prod().item() <= 3500


def _calls(trace):
    """The lines of a trace that run something (not the comments listing a region's members)."""
    return [line for line in str(trace).splitlines() if line.strip() and not line.strip().startswith("#")]


def test_chains_that_meet_are_one_kernel():
    a, b = torch.randn(64, 80), torch.randn(64, 80)
    fn = lambda a, b: a.exp() * 2 + b.sin() * 3  # noqa: E731
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(a, b), fn(a, b))
    assert len(fusionex.fusion_kernels(jfn)) == 1


def test_integer_iota_is_computed_inside_the_kernel():
    # arange compared with per-row targets (a one-hot) inside a row reduction, and arange as a weight.
    def fn(x, y):
        cols = torch.arange(x.shape[-1])
        return torch.where(cols == y[:, None], x * 2, x - 1).sum(-1), (cols * 3 + 1) * x

    x, y = torch.randn(37, 513), torch.randint(0, 513, (37,))
    jfn = _jit(fn)
    for got, want in zip(jfn(x, y), fn(x, y)):
        torch.testing.assert_close(got, want)
    (kernel,) = fusionex.fusion_kernels(jfn)
    assert "iota" in kernel.kernel_ir


def _loss_and_grad_match(jfn, fn, x, y, cot=None, **tol):
    """Asserts jfn(x, y) and x's gradient (the backward through cot, or of a scalar loss) equal fn's
    computed eagerly, each on its own copy of x."""
    xt, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    loss, ref = jfn(xt, y), fn(xe, y)
    torch.testing.assert_close(loss, ref, **tol)
    loss.backward(cot)
    ref.backward(cot)
    torch.testing.assert_close(xt.grad, xe.grad, **tol)


def _values_and_grads_match(jfn, fn, inputs, **tol):
    """Asserts jfn(*inputs) and every input's gradient (the backward through one random cotangent)
    equal fn's computed eagerly, each on its own copies of the inputs (all of them requiring grad)."""
    ins = [tuple(t.clone().requires_grad_() for t in inputs) for _ in range(2)]
    outs = [f(*a) for f, a in zip((jfn, fn), ins)]
    torch.testing.assert_close(outs[0], outs[1], **tol)
    cot = torch.randn_like(outs[1])
    for out in outs:
        out.backward(cot)
    for got, want in zip(*ins):
        torch.testing.assert_close(got.grad, want.grad, **(tol or {"atol": 1e-4, "rtol": 1e-4}))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_training_fuses_forward_and_backward(reduction, dtype):
    # The backward (nll_loss's and log_softmax's) is one pointwise kernel: the one-hot of the targets
    # and exp(logp) times the one-hot's row sum, which is the target's weight (no pass over the
    # row); ignored rows get no gradient.
    torch.manual_seed(0)
    x, y = torch.randn(64, 1000, dtype=dtype), torch.randint(0, 1000, (64,))
    y[3] = -100
    fn = lambda a, t: F.cross_entropy(a * 2, t, reduction=reduction)  # noqa: E731
    jfn = _jit(fn)
    _loss_and_grad_match(jfn, fn, x, y, torch.randn(64 if reduction == "none" else (), dtype=dtype))
    backward = thunder.last_backward_traces(jfn)[-1]
    assert [k.kernel_ir.split()[0] for k in backward.fusion_callables] == ["pointwise"]
    assert not any("torch.ops.aten" in line for line in _calls(backward))


def test_cross_entropy_training_saves_row_statistics_not_log_probabilities():
    # fp32 logits: the forward is one row kernel writing each row's maximum and sum of exponentials
    # ([N, 1]) and the mean loss over the rows; no [N, C] value is written for the backward, which
    # recomputes exp(x - m) from the logits. Rows with +inf, -inf and NaN give eager's values and
    # gradients.
    torch.manual_seed(0)
    x, y = torch.randn(64, 1000) * 3, torch.randint(0, 1000, (64,))
    x[0, 5], x[1], x[2, 7] = float("inf"), -float("inf"), float("nan")
    y[3] = -100
    fn = lambda a, t: F.cross_entropy(a * 2, t)  # noqa: E731
    jfn = _jit(fn)
    _loss_and_grad_match(jfn, fn, x, y, equal_nan=True)
    forward = thunder.last_traces(jfn)[-1]
    assert [k.kernel_ir.split()[0] for k in forward.fusion_callables] == ["inner"]
    header = str(thunder.last_backward_traces(jfn)[-1]).split("):")[1].split("\n  t")[0]
    assert header.count("f32[64, 1000]") == 1 and header.count("f32[64, 1]") == 2, header


def test_cross_entropy_keeps_log_softmax_where_no_fusion_executor_runs():
    # The written-out form pays off only in fused kernels: with the fuser off this device (or absent),
    # the forward calls torch's log_softmax and the backward its log_softmax_backward.
    # So does a CPU fuser for logits smaller than the regions it fuses (min_cpu_numel): the backward
    # then saves the log-probabilities and computes nothing of the forward again.
    off_cpu = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fusion_off_cpu", cpu=False))
    x, y = torch.randn(64, 1000), torch.randint(0, 1000, (64,))
    small = (torch.randn(8, 10), torch.randint(0, 10, (8,)))
    cases = (([FUSE_ALL], (x, y), True), ([off_cpu], (x, y), False), (["torch"], (x, y), False),
             ([FUSE_DEFAULT_SIZE], (x, y), True), ([FUSE_DEFAULT_SIZE], small, False))
    for executors, args, written_out in cases:
        jfn = thunder.jit(F.cross_entropy, executors=executors)
        _loss_and_grad_match(jfn, F.cross_entropy, *args)
        forward, backward = (str(t) for t in (thunder.last_traces(jfn)[-1], thunder.last_backward_traces(jfn)[-1]))
        assert ("log_softmax" not in forward) == written_out, forward
        if not written_out:
            assert [c.split(" = ")[1].split("(")[0] for c in _calls(backward) if " = " in c] == [
                "torch.ops.aten.nll_loss_backward", "torch.ops.aten._log_softmax_backward_data"], backward


def test_small_classifier_step_runs_eagers_composites_and_computes_nothing_again():
    # A classifier's training step whose tensors are all below the CPU fuser's region size: no
    # kernel of thunder's, so each operation is one torch call. The forward runs log_softmax and
    # nll_loss (not cross-entropy written out for a kernel), the backward their backward calls and one
    # linear_backward per layer (not the input's matmul and the bias's sum apart), and recomputes
    # nothing of the forward: its small values are saved. Loss and gradients as eager's.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    ref = copy.deepcopy(net)
    x, y = torch.randn(8, 16), torch.randint(0, 10, (8,))
    jstep = thunder.jit(lambda a, t: F.cross_entropy(net(a), t), executors=[FUSE_DEFAULT_SIZE])
    loss, want = jstep(x, y), F.cross_entropy(ref(x), y)
    torch.testing.assert_close(loss, want)
    loss.backward()
    want.backward()
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    ops = [[c.split(" = ")[1].split("(")[0] for c in _calls(t) if " = " in c]
           for t in (thunder.last_traces(jstep)[-1], thunder.last_backward_traces(jstep)[-1])]
    assert ops[0] == ["torch.nn.functional.linear", "torch.relu", "torch.nn.functional.linear",
                      "torch.nn.functional.log_softmax", "torch.ops.aten.nll_loss_forward"], ops[0]
    assert ops[1] == ["torch.ops.aten.nll_loss_backward", "torch.ops.aten._log_softmax_backward_data",
                      "thunder.core.autograd.linear_backward", "torch.ops.aten.threshold_backward",
                      "thunder.core.autograd.linear_backward"], ops[1]


def _rows_then_all(x):
    # A row reduction, then the maximum of the rows' values over every row.
    return torch.logsumexp(x, -1).amax()


@pytest.mark.parametrize("shape", [(7, 33), (300, 1000), (1, 5), (0, 5), (4, 6, 50)], ids=str)
def test_a_reduction_over_rows_joins_the_row_kernel(shape):
    # After a row reduction, a reduction of the rows' values over every row (cross-entropy's mean
    # over the losses) is the same kernel's: the rows leave their values, combined in row order after
    # them, and the scalars computed from the result are stored once.
    torch.manual_seed(0)
    x = torch.randn(shape) * 3
    fns = [lambda t: torch.logsumexp(t, -1).mean(), lambda t: t.softmax(-1).amax(-1).sum() * 2 + 1,
           lambda t: (t.amax(-1) > 2.5).sum(), lambda t: (t.amax(-1) * 100).int().amax() if t.numel() else t.sum()]
    if x.numel():
        fns.append(_rows_then_all)  # eager's amax of no rows raises
    if x.dim() == 2:
        y = torch.randint(0, shape[1], (shape[0],))
        if shape[0] > 2:
            y[1] = -100
        for reduction in ("mean", "sum"):
            fns.append(lambda t, r=reduction, y=y: F.cross_entropy(t, y, reduction=r))
    for fn in fns:
        jfn = _jit(fn)
        torch.testing.assert_close(jfn(x), fn(x), equal_nan=True)
        if shape[0] == 0:
            continue  # sums over no rows are zeros of the trace's, not the kernel's
        (kernel,) = fusionex.fusion_kernels(jfn)
        # One row: its dim has size 1, so the row reduction reduces everything already.
        assert kernel.kernel_ir.startswith("inner") and ("_rows n" in kernel.kernel_ir) == (shape[0] != 1)


def test_reductions_over_part_of_the_rows_or_over_row_sized_dims_are_kernels_of_their_own():
    # Over some of the kept dims only, the rows' values reduce in a second kernel; so do the rows of
    # a square cross-entropy, whose row and class dims have one size (reductions over equal sizes
    # iterate together).
    torch.manual_seed(0)
    x = torch.randn(4, 5, 60)
    fn = lambda t: t.softmax(-1).amax(-1).sum(0)  # noqa: E731
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(x), fn(x))
    assert len(fusionex.fusion_kernels(jfn)) == 2
    assert not any("_rows n" in k.kernel_ir for k in fusionex.fusion_kernels(jfn))
    x, y = torch.randn(64, 64), torch.randint(0, 64, (64,))
    jfn = _jit(F.cross_entropy)
    torch.testing.assert_close(jfn(x, y), F.cross_entropy(x, y))
    assert not any("_rows n" in k.kernel_ir for k in fusionex.fusion_kernels(jfn))


def _one_hot(t, v, n=300):
    return torch.where(torch.arange(n) == t[:, None], v[:, None], 0.0)


@pytest.mark.parametrize("fn, kind, sums", [
    (lambda t, v, x: _one_hot(t, v).sum(1) * 2, "inner", False),  # folded: no pass over the row left
    (lambda t, v, x: _one_hot(t, v) - x * (-_one_hot(t, v)).sum(1, keepdim=True), "pointwise", False),
    # the index varies along the row: a real sum
    (lambda t, v, x: torch.where(torch.arange(300) == (x * 10).to(torch.int64), v[:, None], 0.0).sum(1),
     "inner", True),
], ids=["row_sum", "full_size", "index_varies"])
def test_row_sum_of_a_one_hot_is_the_targets_value(fn, kind, sums):
    # Out-of-range and negative indices give 0 (as the sum of zeros), -0.0 gives +0.0 (0 + -0).
    t, v, x = torch.randint(-2, 302, (16,)), torch.randn(16), torch.rand(16, 300)
    t[0], v[0] = 5, -0.0
    jfn = _jit(fn)
    got, want = jfn(t, v, x), fn(t, v, x)
    torch.testing.assert_close(got, want)
    assert torch.equal(torch.signbit(got), torch.signbit(want))
    (kernel,) = fusionex.fusion_kernels(jfn)
    assert kernel.kernel_ir.split()[0] == kind
    assert any(line.split()[2:3] == ["sum"] for line in kernel.kernel_ir.splitlines()) == sums, kernel.kernel_ir


def test_nll_loss_with_class_weights_keeps_torch_backward():
    # take() of the class weights is not fusible: torch's nll_loss_backward runs, values as eager.
    torch.manual_seed(0)
    x, y, w = torch.randn(16, 300), torch.randint(0, 300, (16,)), torch.rand(300)
    fn = lambda a, t: F.cross_entropy(a, t, weight=w)  # noqa: E731
    jfn = _jit(fn)
    _loss_and_grad_match(jfn, fn, x, y)
    assert any("torch.ops.aten.nll_loss_backward" in line for line in _calls(thunder.last_backward_traces(jfn)[-1]))


@pytest.mark.parametrize("fn", [softmax, log_softmax], ids=lambda f: f.__name__)
def test_softmax_backward_is_fused(fn):
    torch.manual_seed(0)
    x, cot = torch.randn(33, 1027), torch.randn(33, 1027)
    xt, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    jfn = _jit(lambda a: fn(a) * cot)
    jfn(xt).sum().backward()
    (fn(xe) * cot).sum().backward()
    torch.testing.assert_close(xt.grad, xe.grad)
    assert not any("softmax_backward_data" in line for line in _calls(thunder.last_backward_traces(jfn)[-1]))


def _norm_losses(shape, g):
    n = shape[-1]
    return {
        "layer_norm": (lambda x, w, b: (F.layer_norm(x, (n,), w, b) * g).sum(), 3),
        "rms_norm": (lambda x, w: (F.rms_norm(x, (n,), w) * g).sum(), 2),
    }


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("shape", [(64, 1000), (4, 16, 300)], ids=str)
def test_norm_training_fuses_forward_and_backward(name, shape):
    # native_layer_norm(_backward) and rms_norm's backward decompose into primitives: the fuser takes
    # the forward and the backward (input gradient rows, weight and bias column sums).
    torch.manual_seed(0)
    x, w, b, g = torch.randn(shape), torch.randn(shape[-1]), torch.randn(shape[-1]), torch.randn(shape)
    fn, nargs = _norm_losses(shape, g)[name]
    ts = [t.clone().requires_grad_() for t in (x, w, b)][:nargs]
    es = [t.clone().requires_grad_() for t in (x, w, b)][:nargs]
    jfn = _jit(fn)
    loss, ref = jfn(*ts), fn(*es)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-3)  # a sum of 64000 products
    loss.backward()
    ref.backward()
    for got, want in zip(ts, es):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-4)
    backward = thunder.last_backward_traces(jfn)[-1]
    assert backward.fusion_callables
    assert not any("native_layer_norm_backward" in line or "rms_norm_backward" in line for line in _calls(backward))


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_bf16_norm_gradients_are_as_close_to_float64_as_eager(name):
    # The fused backward accumulates in fp32 and rounds once; eager's bf16 kernels round more often.
    # Both are compared with the float64 gradients of the same bf16 inputs.
    torch.manual_seed(0)
    shape = (64, 1000)
    x, w, b, g = (torch.randn(s, dtype=torch.bfloat16) for s in (shape, shape[-1], shape[-1], shape))
    fn, nargs = _norm_losses(shape, g)[name]
    ts = [t.clone().requires_grad_() for t in (x, w, b)][:nargs]
    es = [t.clone().requires_grad_() for t in (x, w, b)][:nargs]
    rs = [t.double().requires_grad_() for t in (x, w, b)][:nargs]
    _jit(fn)(*ts).backward()
    fn(*es).backward()
    ref_fn, _ = _norm_losses(shape, g.double())[name]
    ref_fn(*rs).backward()
    for got, want, exact in zip(ts, es, rs):
        err = (got.grad.double() - exact.grad).abs().max().item()
        eager_err = (want.grad.double() - exact.grad).abs().max().item()
        scale = exact.grad.abs().max().item()
        assert err <= eager_err + 2 ** -8 * scale, (err, eager_err)


def _backward_kernels(fn, inputs):
    """fn(*inputs).backward() through the fuser and eagerly on copies; checks every gradient against
    eager's and returns the kernel IR of the backward program's fused kernels."""
    ts = [t.clone().requires_grad_() for t in inputs]
    es = [t.clone().requires_grad_() for t in inputs]
    jfn = _jit(fn)
    jfn(*ts).backward()
    fn(*es).backward()
    for got, want in zip(ts, es):
        if want.grad is None:
            assert got.grad is None
            continue
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-4)
    return [k.kernel_ir for k in thunder.last_backward_traces(jfn)[-1].fusion_callables]


def _outputs(kernel_ir):
    return sum(line.startswith("  out") for line in kernel_ir.splitlines())


def test_layer_norm_backward_is_one_kernel_writing_only_gradients():
    # The input-gradient row kernel also sums the weight and bias gradients over its rows (grad *
    # xhat and grad, per column): one read of grad and x for all three gradients, nothing else
    # written. Rows wider than kMaxColumnsOverRows leave the column sums to a column kernel, which
    # recomputes grad * xhat from grad, x, mean and rstd instead of reading intermediates.
    torch.manual_seed(0)
    for width, kinds, outputs in ((1024, ["inner"], [3]), (16385, ["inner", "outer"], [1, 2])):
        x, w, b, g = torch.randn(64, width), torch.randn(width), torch.randn(width), torch.randn(64, width)
        fn = lambda x, w, b: (F.layer_norm(x, (width,), w, b) * g).sum()  # noqa: E731
        kernels = _backward_kernels(fn, (x, w, b))
        assert [k.split()[0] for k in kernels] == kinds
        assert [_outputs(k) for k in kernels] == outputs
        if width == 1024:
            assert sum("_rows" in line for line in kernels[0].splitlines()) == 2


@pytest.mark.parametrize("width", [100, 1000, 4099])
def test_fused_norms_center_constant_rows_exactly(width):
    # A constant row normalises to 0 exactly, as in eager (its Welford mean is the row's value): the
    # fused mean, sum / n corrected by the mean of the differences from it, is exact there. sum / n
    # alone was an ulp off, and rstd (1 / sqrt(eps)) made that about 1e-4 in the output. Gradients
    # through such rows, against eager's autograd.
    torch.manual_seed(0)
    x = torch.randn(48, width)
    x[::3] = 0.7310586
    x[1::6] = 1.0 / 3.0
    w, b, g = torch.randn(width), torch.randn(width), torch.randn(48, width)
    got, want = _jit(lambda x: F.layer_norm(x, (width,)))(x), F.layer_norm(x, (width,))
    torch.testing.assert_close(got, want)
    assert (want[::3] == 0).all() and (want[1::6] == 0).all() and torch.equal(got == 0, want == 0)
    # group_norm's groups: samples of 2 groups of width / 2 columns (constant samples: rows ::3).
    xs = x[:, : width // 2 * 2].reshape(48, 2, width // 2)
    got, want = _jit(lambda x: F.group_norm(x, 2))(xs), F.group_norm(xs, 2)
    torch.testing.assert_close(got, want)
    assert torch.equal(got[::3] == 0, want[::3] == 0)
    # Gradients against eager's autograd, and against float64's: the weight gradient sums g * xhat
    # over the rows, and eager's is up to about 1e-4 off float64's here, thunder's within 1e-5.
    ins = [(x, w, b)] + [tuple(t.clone().requires_grad_() for t in (x, w, b)) for _ in range(2)]
    ins[0] = tuple(t.double().requires_grad_() for t in ins[0])
    for (xs, ws, bs), fn in zip(ins, (F.layer_norm, F.layer_norm, _jit(F.layer_norm))):
        (fn(xs, (width,), ws, bs) * g.to(xs.dtype)).sum().backward()
    for f64, eager, got in zip(*ins):
        torch.testing.assert_close(got.grad, eager.grad, atol=2e-4, rtol=1.3e-6)
        torch.testing.assert_close(got.grad.double(), f64.grad, atol=1e-5, rtol=1.3e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_group_norm_in_one_domain(dtype):
    # group_norm computes over (n, groups, channels / groups, spatial): its forward is one row kernel
    # (statistics, normalization, per-channel weight and bias); the backward reads x and the
    # gradient, no torch call beside its kernels but views. Shapes: spatial dims of 2 and 3 dims,
    # none (rank 2), one group, a group a channel, without weight and bias. Values and gradients
    # against eager's autograd.
    torch.manual_seed(0)
    cases = [((2, 64, 16, 16), 8, True), ((3, 6, 5), 3, True), ((4, 6), 2, True),
             ((2, 4, 3, 2, 5), 2, False), ((2, 6, 7), 1, True), ((2, 6, 7), 6, True)]
    for shape, groups, affine in cases:
        x = torch.randn(shape) * 3 + 1
        w, b = torch.randn(shape[1]), torch.randn(shape[1])
        g = torch.randn(shape)
        # Without weight and bias, of a computed value (x * 2 is computed over the groups' shape:
        # its reshape to the groups moves ahead of it).
        fn = (lambda x, w, b, groups=groups: F.group_norm(x, groups, w, b, eps=1e-4)) if affine else (
            lambda x, w, b, groups=groups: F.group_norm(x * 2, groups) + w.sum() * b.sum())
        jfn = _jit(fn)
        ins = [tuple(t.to(dtype).requires_grad_() for t in (x, w, b)) for _ in range(2)]
        outs = [f(*args) for f, args in zip((jfn, fn), ins)]
        tol = {} if dtype == torch.float32 else {"atol": 3e-2, "rtol": 2e-2}
        torch.testing.assert_close(outs[0], outs[1], **tol)
        for out in outs:
            out.backward(g.to(dtype))
        for got, want in zip(*ins):
            torch.testing.assert_close(got.grad, want.grad, **({"atol": 1e-4, "rtol": 1e-4} if not tol else
                                                              {"atol": 0.1, "rtol": 5e-2}))
        if affine:
            forward = thunder.last_traces(jfn)[-1]
            assert len(forward.fusion_callables) == 1, str(forward)
            calls = [line for line in _calls(forward) if " = torch." in line]
            assert all(" = torch.reshape(" in line for line in calls), str(forward)
            # The forward also writes each group's mean and rstd ((N, groups) in float32, saved); the
            # backward reads them (no statistic computed again: no var in its kernels): the input
            # gradient's row kernel, then the weight and bias gradients' kernel, which reads x and
            # the gradient again instead of a normalized x written for it.
            backward = thunder.last_backward_traces(jfn)[-1]
            assert len(backward.fusion_callables) == 2, str(backward)
            irs = [k.kernel_ir for k in backward.fusion_callables]
            assert not any(" = var " in ir for ir in irs), irs
            full = [t for ir in irs for t in ir.split("\n") if t.startswith("  out")]
            assert len(full) <= 3, str(backward)
            header = [line for line in str(backward).split("\n") if line.startswith("  # ")]
            assert sum(f'f32[{shape[0]}, {groups}]"' in line for line in header) == 2, str(backward)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_norms_updating_running_statistics_are_one_kernel_and_copies(dtype):
    # nn.BatchNorm2d in training updates its running statistics in place: the statistics, the
    # output and the statistics' new values are one fused kernel, the copies into the buffers
    # torch calls after it (torch's batch_norm ran it all before). InstanceNorm2d with running
    # statistics (a mean of its rows' statistics, which would be kernels of their own) stays
    # torch's call. Three steps: outputs, input and parameter gradients, and the buffers against
    # eager's. Tiny inputs (below the default executors' fusion size) stay one torch call.
    torch.manual_seed(0)
    for make in (lambda: torch.nn.BatchNorm2d(16), lambda: torch.nn.InstanceNorm2d(16, affine=True,
                                                                                  track_running_stats=True)):
        eager = make().to(dtype)
        with torch.no_grad():
            eager.weight.uniform_(0.5, 1.5)
            eager.bias.uniform_(-0.5, 0.5)
        mine = copy.deepcopy(eager)
        jm = _jit(mine)
        for step in range(3):
            x = (torch.randn(8, 16, 12, 10) * 2 + step).to(dtype)
            norm_values_and_grads_match(jm, eager, (x,), dtype, cotangent=torch.randn(8, 16, 12, 10))
            tol = 1e-4 if dtype == torch.float32 else 2e-2
            for (name, got), want in zip(mine.named_parameters(), eager.parameters()):
                scale = max(want.grad.abs().max().item(), 1.0)
                torch.testing.assert_close(got.grad, want.grad, atol=tol * 2.5 * scale, rtol=tol, msg=name)
                got.grad = want.grad = None
            for (name, got), want in zip(mine.named_buffers(), eager.buffers()):
                torch.testing.assert_close(got, want, atol=tol, rtol=tol, msg=name)
        forward = thunder.last_traces(jm)[-1]
        fused = isinstance(eager, torch.nn.BatchNorm2d)
        assert len(forward.fusion_callables) == (1 if fused else 0), str(forward)
        calls = [line for line in _calls(forward) if " = torch" in line and "copy_" not in line]
        assert any("_norm(" in line for line in calls) != fused, str(forward)
    tiny = torch.nn.BatchNorm2d(3)
    jt = thunder.jit(tiny)
    torch.testing.assert_close(jt(torch.randn(2, 3, 4, 4)).shape, torch.Size([2, 3, 4, 4]))
    assert "batch_norm(" in str(thunder.last_traces(jt)[-1])


def test_batch_norm_and_relu_are_one_kernel_beside_the_running_statistics_copies():
    # The copies into the running statistics are ordered only with the readers of those buffers:
    # the ReLU after nn.BatchNorm2d joins the kernel that computes the statistics' new values (it
    # writes the ReLU's output, not the norm's), and the copies follow that kernel. Two steps of
    # conv, BatchNorm2d, ReLU, conv, BatchNorm2d, ReLU: outputs, gradients and buffers as eager's.
    torch.manual_seed(0)
    eager = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
    mine = copy.deepcopy(eager)
    jm = _jit(mine)
    for _ in range(2):
        x = torch.randn(4, 8, 12, 10)
        got, want = jm(x), eager(x)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        cot = torch.randn_like(want)
        got.backward(cot)
        want.backward(cot)
        for (name, p), q in zip(mine.named_parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, q.grad, atol=1e-3, rtol=1e-4, msg=name)
        for (name, b), c in zip(mine.named_buffers(), eager.buffers()):
            torch.testing.assert_close(b, c, atol=1e-5, rtol=1e-5, msg=name)
    forward = thunder.last_traces(jm)[-1]
    assert len(forward.fusion_callables) == 2, str(forward)
    assert not any("relu" in line for line in _calls(forward)), str(forward)
    order = [line.split(" = ")[1].split("(")[0] for line in _calls(forward) if " = " in line]
    assert order.count("torchex.copy_") == 6 and order.index("torchex.copy_") > order.index("fusion_all0"), order


def test_reductions_over_the_innermost_dims_and_outer_ones_are_rows_read_in_runs():
    # A sum over the samples and the spatial dims of each channel (batch_norm's statistics, its
    # weight and bias gradients) is a row kernel over the channels, each row read in runs of the
    # spatial elements; with a short innermost run (3 elements) a column kernel. Values against eager.
    torch.manual_seed(0)
    x, wide, short = torch.randn(4, 24, 9, 11), torch.randn(4, 6, 5, 80), torch.randn(512, 16, 3)
    for t, dims, kind in [(x, (0, 2, 3), "inner"), (wide, (0, 3), "inner"), (x, (0, 3), "outer"),
                          (short, (0, 2), "outer")]:
        fn = lambda t, dims=dims: (t * 2).sum(dims)  # noqa: E731
        jfn = _jit(fn)
        torch.testing.assert_close(jfn(t), fn(t), rtol=1e-5, atol=1e-4)
        (kernel,) = fusionex.fusion_kernels(jfn)
        assert kernel.kernel_ir.startswith(kind), kernel.kernel_ir


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_batch_norm_training_is_one_kernel_each_way(dtype):
    # F.batch_norm in training without running statistics: the statistics and the normalization in
    # one row kernel a channel, the input, weight and bias gradients in one backward kernel. Values
    # and gradients against eager's autograd.
    torch.manual_seed(0)
    x, w, b = torch.randn(8, 16, 12, 10) * 2 + 1, torch.randn(16), torch.randn(16)
    g = torch.randn(8, 16, 12, 10)
    fn = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-3)  # noqa: E731
    jfn = _jit(fn)
    norm_values_and_grads_match(jfn, fn, (x, w, b), dtype, cotangent=g)
    assert len(thunder.last_traces(jfn)[-1].fusion_callables) == 1
    backward = thunder.last_backward_traces(jfn)[-1]
    assert len(backward.fusion_callables) == 1, str(backward)


def test_element_wise_operations_after_a_reshape_of_a_computed_value_join_its_kernel():
    # group_norm's result is reshaped from its groups back to (n, c, h, w): the element-wise
    # operations after it (silu, a product with an input, a per-sample per-channel bias broadcast
    # over the positions) are computed over the groups' shape in the norm's kernel, and reshaped
    # after it. The forward is one kernel; values and gradients against eager.
    torch.manual_seed(0)
    x, g = torch.randn(2, 64, 8, 8), torch.randn(2, 64, 8, 8)
    w, b, temb = torch.randn(64), torch.randn(64), torch.randn(2, 64)
    cases = [lambda x, w, b, g, e: F.silu(F.group_norm(x, 8, w, b)),
             lambda x, w, b, g, e: F.group_norm(x, 8, w, b) * g - x,
             lambda x, w, b, g, e: F.silu(F.group_norm(x, 8, w, b) + e[:, :, None, None])]
    for fn in cases:
        jfn = _jit(fn)
        _values_and_grads_match(jfn, fn, (x, w, b, g, temb))
        forward = thunder.last_traces(jfn)[-1]
        assert len(forward.fusion_callables) == 1, str(forward)


def test_element_wise_operations_before_a_reshape_are_computed_over_its_shape():
    # A reshape of a value computed element-wise from inputs (x * 2 + 1 before group_norm's reshape
    # to its groups; silu's gradient before group_norm's backward reshapes it) moves ahead of those
    # operations: group_norm(x * 2 + 1) is one forward kernel, silu(group_norm(x))'s backward two
    # (the input gradient's rows, then the weight and bias gradients). Values and gradients against
    # eager.
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 64, 8, 8), torch.randn(64), torch.randn(64)
    for fn, kernels in [(lambda x, w, b: F.group_norm(x * 2 + 1, 8, w, b), (1, 2)),
                        (lambda x, w, b: F.silu(F.group_norm(x, 8, w, b)), (1, 2))]:
        jfn = _jit(fn)
        _values_and_grads_match(jfn, fn, (x, w, b))
        got_kernels = (len(thunder.last_traces(jfn)[-1].fusion_callables),
                       len(thunder.last_backward_traces(jfn)[-1].fusion_callables))
        assert got_kernels == kernels, got_kernels


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_silu_of_group_norm_saves_the_statistics_not_the_normalized_input(dtype):
    # silu's backward reads group_norm's output: the backward's kernels compute it again from x,
    # each group's mean and rstd (float32) and the weight and bias, so the forward writes only the
    # silu's output and the statistics, and the backward reads x and the gradient. Inputs far from
    # zero mean: the float32 statistics give the forward's output again. Values and gradients
    # against eager, within bf16's tolerance of each gradient's largest element (eager's bf16
    # backward reads a mean rounded to bf16: its weight gradient here is 7x further from float64's
    # than thunder's).
    torch.manual_seed(0)
    x, w, b = torch.randn(4, 64, 8, 8) * 3 + 40, torch.randn(64), torch.randn(64)
    fn = lambda x, w, b: F.silu(F.group_norm(x, 8, w, b))  # noqa: E731
    jfn = _jit(fn)
    norm_values_and_grads_match(jfn, fn, (x, w, b), dtype)
    backward = thunder.last_backward_traces(jfn)[-1]
    header = [line for line in str(backward).split("\n") if line.startswith("  # ")]
    assert sum("[4, 64, 8, 8]" in line for line in header) == 2, str(backward)  # x and the gradient
    assert sum('f32[4, 8]"' in line for line in header) == 2, str(backward)
    assert (len(thunder.last_traces(jfn)[-1].fusion_callables), len(backward.fusion_callables)) == (1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_time_embedding_added_before_or_after_group_norm(dtype):
    # A diffusion UNet adds a per-sample, per-channel time embedding next to group_norm and silu. In
    # bf16 the embedding is converted before it is broadcast, and the backward reshapes x + temb to
    # the groups twice (the input gradient, and the norm's output computed again): one forward
    # kernel; the backward's input gradient rows, the weight and bias sums, and the embedding's
    # gradient (a sum over (h, w) of the input gradient). Values and gradients against eager.
    torch.manual_seed(0)
    x, w, b, temb = torch.randn(2, 64, 8, 8), torch.randn(64), torch.randn(64), torch.randn(2, 64, 1, 1)
    for fn in (lambda x, w, b, t: F.silu(F.group_norm(x + t, 8, w, b)),
               lambda x, w, b, t: F.silu(F.group_norm(x, 8, w, b) + t)):
        jfn = _jit(fn)
        norm_values_and_grads_match(jfn, fn, (x, w, b, temb), dtype)
        kernels = (len(thunder.last_traces(jfn)[-1].fusion_callables),
                   len(thunder.last_backward_traces(jfn)[-1].fusion_callables))
        assert kernels == (1, 3), kernels


def test_tensors_added_by_moving_reshapes_take_names_no_other_tensor_has():
    # The reshapes moved across element-wise operations add tensors (x reshaped to the groups'
    # shape, hinted "x_h"); an argument of that name keeps its own. Values against eager, and every
    # name the program defines defined once.
    torch.manual_seed(0)
    x, x_h, w, b = torch.randn(2, 64, 8, 8), torch.randn(2, 64, 8, 8), torch.randn(64), torch.randn(64)

    def fn(x, x_h, w, b):
        y = F.group_norm(x * 2 + 1, 8, w, b) + x_h
        return y.sum(dim=(2, 3)), y * x_h

    jfn = _jit(fn)
    for got, want in zip(jfn(x, x_h, w, b), fn(x, x_h, w, b)):
        torch.testing.assert_close(got, want)
    names = [line.split(" = ")[0].strip() for line in str(thunder.last_traces(jfn)[-1]).splitlines()
             if " = " in line and line.strip() and not line.strip().startswith("#")]
    defined = [n.strip("() ") for line in names for n in line.split(",") if n.strip("() ")]
    assert "x_h" not in defined and len(defined) == len(set(defined)), defined


def test_group_norm_of_channels_last_and_strided_inputs():
    # A channels-last input (its reshape to the groups is not a view of its strides: the kernel
    # reads it made contiguous) and a sliced one (every other element of a leaf's last dim, the
    # gradient the leaf's), values and gradients against eager.
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 5).to(memory_format=torch.channels_last)
    w, b = torch.randn(8), torch.randn(8)
    fn = lambda x, w, b: F.group_norm(x, 4, w, b)  # noqa: E731
    _values_and_grads_match(_jit(fn), fn, (x, w, b))
    base = torch.randn(2, 8, 6, 10)
    leaves = [tuple(t.clone().requires_grad_() for t in (base, w, b)) for _ in range(2)]
    outs = [f(base[..., ::2], wi, bi) for f, (base, wi, bi) in zip((_jit(fn), fn), leaves)]
    assert not leaves[0][0][..., ::2].is_contiguous()
    torch.testing.assert_close(outs[0], outs[1])
    g = torch.randn_like(outs[1])
    for out in outs:
        out.backward(g)
    for got, want in zip(*leaves):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-4, rtol=1e-4)


def test_fused_glu_softmin_normalize_and_losses_with_gradients():
    # glu, softmin, normalize (a zero row), smooth_l1/huber (both sides of beta / delta) and kl_div
    # (targets with zeros: their input gradients are 0, their target gradients NaN, as in eager)
    # in fused kernels, values and gradients against eager's autograd.
    torch.manual_seed(0)
    x, t = torch.randn(64, 130), torch.randn(64, 130)
    x[3] = 0
    p, q = F.log_softmax(torch.randn(64, 130), -1), F.softmax(torch.randn(64, 130) * 3, -1)
    q[0, :5] = 0
    cases = [(lambda x: F.glu(x * 2, 1), (x,)), (lambda x: F.softmin(x * 2, -1), (x,)),
             (lambda x: F.normalize(x * 2, dim=-1), (x,)),
             (lambda x, t: F.smooth_l1_loss(x, t, beta=0.5), (x, t)),
             (lambda x, t: F.huber_loss(x, t, delta=0.7, reduction="sum"), (x, t)),
             (lambda p, q: F.kl_div(p, q, reduction="batchmean"), (p, q)),
             (lambda p, q: F.kl_div(p, q.clamp_min(1e-6).log(), reduction="sum", log_target=True), (p, q))]
    for fn, args in cases:
        got_in = [a.clone().requires_grad_() for a in args]
        want_in = [a.clone().requires_grad_() for a in args]
        jfn = _jit(fn)
        got, want = jfn(*got_in), fn(*want_in)
        torch.testing.assert_close(got, want)
        assert any(b["name"].startswith("fusion") for b in thunder.last_traces(jfn)[-1].bound_symbols)
        g = torch.randn_like(want)
        (got * g).sum().backward()
        (want * g).sum().backward()
        for a, e in zip(got_in, want_in):
            torch.testing.assert_close(a.grad, e.grad, equal_nan=True)


def test_fused_activations_with_gradients():
    # selu, celu, logsigmoid, softsign, tanhshrink, softshrink, hardshrink, threshold, frac,
    # nan_to_num, logaddexp, prelu, hypot, logit, copysign, xlogy, xlog1py and float_power in one
    # fused kernel each (after a multiply: a lone op runs as its torch call), values and gradients against eager's autograd (NaN and inf elements too).
    torch.manual_seed(0)
    x = torch.randn(64, 130) * 3
    x[0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0])
    slope = torch.tensor([0.2])
    fns = [F.selu, lambda t: F.celu(t, 0.5), F.logsigmoid, F.softsign, F.tanhshrink, F.softshrink,
           lambda t: F.hardshrink(t, 1.0), lambda t: F.threshold(t, 0.2, -3.0), torch.frac,
           torch.nan_to_num, lambda t: torch.logaddexp(t, t * -0.3), lambda t: F.prelu(t, slope),
           lambda t: torch.hypot(t, t * -0.3), lambda t: torch.logit(t * 0.1 + 0.5),
           lambda t: torch.copysign(t, -0.0), lambda t: torch.copysign(t, t - 1), lambda t: torch.xlogy(t, t + 1),
           lambda t: torch.special.xlog1py(t, t * t), lambda t: torch.float_power(t, 2.0).float()]
    for fn in fns:
        got_in, want_in = x.clone().requires_grad_(), x.clone().requires_grad_()
        jfn = _jit(lambda t, fn=fn: fn(t * 0.5))
        got, want = jfn(got_in), fn(want_in * 0.5)
        torch.testing.assert_close(got, want, equal_nan=True)
        assert [b["name"][:6] for b in thunder.last_traces(jfn)[-1].bound_symbols if b["name"] != "return"] == ["fusion"]
        g = torch.randn_like(want)
        (got * g).nansum().backward()
        (want * g).nansum().backward()
        torch.testing.assert_close(got_in.grad, want_in.grad, equal_nan=True)


def test_cpu_sums_of_products_read_once_are_multiply_adds():
    # A float sum of a product nothing else reads (a dot product over rows, layer_norm's sum of
    # squared deviations, the column sums of its weight gradient) accumulates by fused multiply-adds
    # where the machine has them; the element-wise a * b + c rounds twice, bit for bit eager's.
    torch.manual_seed(0)
    a, b, c = (torch.randn(33, 1037) for _ in range(3))
    a[0, 3], b[1, 5], c[2, 7] = float("inf"), float("nan"), float("-inf")
    dot = _jit(lambda a, b, c: (a * b).sum(-1) + c[:, 0])
    torch.testing.assert_close(dot(a, b, c), (a * b).sum(-1) + c[:, 0], equal_nan=True)
    assert "th_fma(" in fusionex.fusion_source(dot, 0).split("TH_INLINE float th_exp_nonpos")[1]
    mul_add = _jit(lambda a, b, c: a * b + c)
    torch.testing.assert_close(mul_add(a, b, c), a * b + c, rtol=0, atol=0, equal_nan=True)
    assert "th_fma(" not in fusionex.fusion_source(mul_add, 0).split("TH_INLINE float th_exp_nonpos")[1]
    ln = _jit(layer_norm)
    norm_values_and_grads_match(ln, layer_norm, (a[3:] * 3 + 1, b[3], c[3]), torch.float32)
    sources = [k.source() for k in fusionex.fusion_kernels(ln) + thunder.last_backward_traces(ln)[-1].fusion_callables]
    assert all("th_fma(" in src.split("TH_INLINE float th_exp_nonpos")[1] for src in sources)


def test_cpu_softmax_keeps_its_exponentials_in_the_output_row():
    # The row buffer of exp(x - max) is the output's row (float32 like the buffer): the exp pass
    # writes it, the last pass rescales it in place. A bf16 output keeps a separate buffer.
    x = torch.randn(37, 1000)
    jfn = _jit(softmax)
    torch.testing.assert_close(jfn(x), softmax(x))
    src = fusionex.fusion_source(jfn, 0)
    assert "* buf" in src and "= out0 + (" in src and "[1000];" not in src
    xb = x.bfloat16()
    jfn = _jit(softmax)
    torch.testing.assert_close(jfn(xb), softmax(xb))
    assert "[1000];" in fusionex.fusion_source(jfn, 0)


def test_cpu_row_kernels_prefetch_the_next_row_in_their_second_pass():
    # The exp pass (the second of three) brings the next row of x into cache for the max pass; rows
    # of a width that is not a multiple of the unrolled step, and every row of each thread's range
    # (its last has no next row). log_softmax and layer_norm read x again in their last pass: their
    # prefetch asks for L2 only (hint 2), not to evict the row that pass reads. The next row's
    # output lines, stored by a later pass, are prefetched for writing (rw 1).
    torch.manual_seed(0)
    x = torch.randn(301, 1037)
    x[7] = -float("inf")
    jfn = _jit(softmax)
    torch.testing.assert_close(jfn(x), softmax(x), equal_nan=True)
    src = fusionex.fusion_source(jfn, 0)
    assert src.count("__builtin_prefetch") == 2 and "(row + 1)" in src and "if (row + 1 < end)" in src
    assert "+ q, 0, 3);" in src and "__builtin_prefetch((char*)(out0 + 0LL + (((row + 1)) * 1037LL) + cb2) + q, 1, 3);" in src
    for fn, args in ((log_softmax, (x,)), (layer_norm, (x.nan_to_num(neginf=0.0), torch.randn(1037), torch.randn(1037)))):
        jfn = _jit(fn)
        torch.testing.assert_close(jfn(*args), fn(*args), equal_nan=True)
        src = fusionex.fusion_source(jfn, 0)
        assert src.count("__builtin_prefetch") == 2 and "+ q, 0, 2);" in src and "if (row + 1 < end)" in src, fn
        assert "(out0 + 0LL + (((row + 1)) * 1037LL) + cb2) + q, 1, 3);" in src, fn


def test_cpu_group_rows_keep_an_expensive_value_for_their_later_passes():
    # silu(group_norm(x))'s backward: a group's row spans two axes (channels of the group, positions);
    # the sigmoid its two passes read is computed once, kept in a row buffer; the exponential under
    # it is needed only by the pass that fills the buffer, so it gets no buffer of its own. Values
    # and every gradient against torch.autograd, with a NaN and an inf in two groups.
    torch.manual_seed(0)
    x = torch.randn(2, 32, 16, 16) * 3 + 1
    x[0, 5, 3, 4] = float("nan")
    x[1, 20, 0, 0] = float("inf")
    w, b, g = torch.randn(32), torch.randn(32), torch.randn(2, 32, 16, 16)

    def fn(x, w, b):
        return F.silu(F.group_norm(x, 4, w, b)) * g

    args = [t.clone().requires_grad_(True) for t in (x, w, b)]
    ref_args = [t.clone().requires_grad_(True) for t in (x, w, b)]
    jfn = _jit(fn)
    out = jfn(*args)
    ref = fn(*ref_args)
    torch.testing.assert_close(out, ref, equal_nan=True)
    got = torch.autograd.grad(out, args, g)
    want = torch.autograd.grad(ref, ref_args, g)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, equal_nan=True, rtol=1e-4, atol=1e-4)
    sources = [k.source() for k in thunder.last_backward_traces(jfn)[-1].fusion_callables]
    row = [s for s in sources if "2048LL" in s and "float buf" in s]
    assert len(row) == 1 and row[0].count("float buf") == 1, sources


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_cpu_exponentials_of_row_excess_are_inlined_and_within_float_rounding(scale):
    # exp(x - amax(x)) has an argument at most 0: an inlined, vectorisable exponential instead of
    # libm's call, for softmax's numerators and log_softmax's sums; any other exp keeps expf.
    # Scaled rows reach arguments far below -87 (results that flush to 0), with -inf, +inf and NaN.
    torch.manual_seed(0)
    x = torch.randn(9, 3000) * scale
    x[1] = -float("inf")
    x[2, 5] = float("inf")
    x[3, 17] = float("nan")
    x[4, ::2] = -float("inf")
    for fn in (softmax, log_softmax):
        jfn = _jit(fn)
        torch.testing.assert_close(jfn(x), fn(x), equal_nan=True)
        src = fusionex.fusion_source(jfn, 0)
        assert "th_exp_nonpos(v" in src and "expf(v" not in src
    jfn = _jit(lambda t: torch.exp(t) * 2 + t)
    torch.testing.assert_close(jfn(x), torch.exp(x) * 2 + x, equal_nan=True)
    assert "th_exp_nonpos(v" not in fusionex.fusion_source(jfn, 0)


def test_cpu_exponential_of_row_excess_error_bounds():
    # The inlined exponential over a million arguments in [-104, 0] against float64: within 2^-21
    # absolute (the results are at most 1), and 2^-20 relative down to -10.
    torch.manual_seed(0)
    x = torch.cat([torch.zeros(1), -torch.rand(2**20) * 104, -torch.rand(2**16) * 1e-3]).reshape(1, -1)
    got = _jit(lambda t: torch.exp(t - t.amax(-1, keepdim=True)))(x).double()
    ref = torch.exp(x.double())
    assert (got - ref).abs().max().item() <= 2**-21
    near = x >= -10
    assert ((got - ref).abs() / ref)[near].max().item() <= 2**-20


def test_mlp_backward_recomputes_gelu_in_the_kernel_of_its_backward():
    # The input gradient of the second linear is a matmul apart from its weight gradient, so the
    # recomputed gelu(h) (read by the weight gradient) and gelu's backward (after that matmul) are
    # one kernel reading h once, with the first linear's bias gradient.
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
    ref = copy.deepcopy(m)
    jm = thunder.jit(m, executors=[FUSE_ALL])
    x = torch.randn(4, 32, 64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    jm(x).sum().backward()
    ref(x2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    for p, q in zip(m.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    bwd = thunder.last_backward_traces(jm)[-1]
    irs = [k.kernel_ir for k in bwd.fusion_callables]
    # gelu (erf) and its backward (exp) in one kernel, with three outputs: gelu(h) for the weight
    # gradient, h's gradient and the bias gradient.
    assert any(" erf " in ir and " exp " in ir and _outputs(ir) == 3 for ir in irs), irs
    assert "gelu(" not in str(bwd)


def test_column_sum_of_a_broadcast_scalar_reads_its_accumulator_per_column():
    # The gradient of y.sum() is one value expanded (every stride 0); its column sum (a bias
    # gradient) is per column all the same, and its epilogue stays in the column loop.
    g = torch.full((1, 1), 1.5).expand(128, 64)
    fn = lambda g: (g.to(torch.bfloat16), g.sum(0).to(torch.bfloat16).float() * 2)
    jfn = _jit(fn)
    for got, want in zip(jfn(g), fn(g)):
        torch.testing.assert_close(got, want)
    assert [k.kernel_ir.split()[0] for k in fusionex.fusion_kernels(jfn)] == ["outer"]


def test_rms_norm_backward_rows_join_past_the_weight_gradient_column_sum():
    # In rms_norm's backward the weight gradient's column sum comes between the rstd rows and the
    # input-gradient rows; all of it is one row kernel that sums the weight gradient over its rows,
    # instead of three kernels that write and read x * rstd. Rows too wide for sums over rows per
    # column: the rows are one kernel and the column sum a second.
    torch.manual_seed(0)
    for width, kinds in ((1024, ["inner"]), (16400, ["inner", "outer"])):
        x, w, g = torch.randn(32, width), torch.randn(width), torch.randn(32, width)
        fn = lambda x, w: (F.rms_norm(x, (width,), w) * g).sum()  # noqa: E731
        assert [k.split()[0] for k in _backward_kernels(fn, (x, w))] == kinds


def test_kernel_takes_later_independent_operations_and_defers_what_reads_a_skipped_one(monkeypatch):
    # With sums over rows per column off, the column sum c does not join the row kernel; the row
    # operations after it that do not read it join that kernel, and d (which reads c) runs after c.
    # Values and order as in eager. With them on, all of it is one row kernel.
    def fn(x):
        r = x - x.mean(1, keepdim=True)
        c = (r * 2).sum(0)
        s = (r.exp() / r.exp().sum(1, keepdim=True))
        d = c.sin() + 1
        return s * 3, d, s.amax(1)

    x = torch.randn(128, 333)
    for off, kinds in ((True, ["inner", "outer"]), (False, ["inner"])):
        if off:
            monkeypatch.setenv("THUNDER_FUSION_COLUMNS_OVER_ROWS", "0")
        else:
            monkeypatch.delenv("THUNDER_FUSION_COLUMNS_OVER_ROWS")
        jfn = _jit(fn)
        for got, want in zip(jfn(x), fn(x)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)  # column sums of 128 rows
        kernels = list(fusionex.fusion_kernels(jfn))
        assert [k.kernel_ir.split()[0] for k in kernels] == kinds


@pytest.mark.parametrize("fn", [
    lambda x: (x.sum(1), x.sum(0)),
    lambda x: x.sum(1) + x.sum(0),
    lambda x: (x[:, :1] * x[:1, :]).sum(1) + (x[:, :1] * x[:1, :]).sum(0),
    lambda x: (x.amax(1, keepdim=True) - x).sum(0) + x.mean(1),
], ids=["both_sums", "sum_of_sums", "outer_product", "row_then_column"])
def test_reductions_of_a_square_value_over_different_dims(fn):
    # Reductions over different dims of equal sizes may share an axis only when no value varies over
    # both: a square x's row and column sums are two kernels, not its diagonal read twice.
    x = torch.randn(48, 48)
    torch.testing.assert_close(_jit(fn)(x), fn(x), rtol=1e-4, atol=1e-4)


def _hand_written_rms_norm(x, w, b):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


def _hand_written_layer_norm(x, w, b):
    xc = x - x.mean(-1, keepdim=True)
    return xc * torch.rsqrt((xc * xc).mean(-1, keepdim=True) + 1e-5) * w + b


@pytest.mark.parametrize("norm", [_hand_written_rms_norm, _hand_written_layer_norm], ids=["rms", "layer"])
def test_hand_written_norm_backward_is_one_row_kernel(norm):
    # The backward of mean broadcasts each row's value to the row's shape on a new dim; the row
    # kernel iterates that dim on the reduced axis, so the input gradient is one row kernel (reading
    # grad and x once, recomputing what it needs), which also sums the weight (and bias) gradients
    # over its rows, in one region although they share only their inputs.
    torch.manual_seed(0)
    x, w, b, g = torch.randn(256, 1024), torch.randn(1024), torch.randn(1024), torch.randn(256, 1024)

    def fn(x, w, b):
        return (norm(x, w, b) * g).sum()

    (kernel,) = _backward_kernels(fn, (x, w, b))
    assert kernel.split()[0] == "inner"
    # Only the gradients are written.
    assert _outputs(kernel) == (3 if norm is _hand_written_layer_norm else 2)


def test_one_kernel_serves_inputs_whose_strides_change_between_calls():
    # The kernel keeps a variant per input layout and reuses the last one while strides repeat.
    fn = lambda a, b: (a * 2 + b).exp()  # noqa: E731
    jfn = _jit(fn)
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    for args in ((a, b), (a.t(), b), (a, b.t()), (a, b), (a.t(), b.t()), (a, b), (a.t(), b)):
        torch.testing.assert_close(jfn(*args), fn(*args))
    assert len(fusionex.fusion_kernels(jfn)) == 1


ACTIVATIONS = {
    "gelu": lambda t: F.gelu(t),
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_backward_is_fused_with_its_neighbours(name, dtype):
    # gelu/silu/tanh/sigmoid/threshold backward kernels are written as primitives: the backward of
    # act(x * w + b) * g is fused kernels only (no aten backward call), with eager's gradients.
    torch.manual_seed(0)
    act = ACTIVATIONS[name]
    x, w, b, g = (torch.randn(s, dtype=dtype) for s in ((64, 300), 300, 300, (64, 300)))
    fn = lambda x, w, b: (act(x * w + b) * g).sum()  # noqa: E731
    ts = [t.clone().requires_grad_() for t in (x, w, b)]
    es = [t.clone().requires_grad_() for t in (x, w, b)]
    jfn = _jit(fn)
    jfn(*ts).backward()
    fn(*es).backward()
    tol = {} if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-1)  # bf16 sums over 64 rows
    for got, want in zip(ts, es):
        torch.testing.assert_close(got.grad, want.grad, **({"rtol": 1e-4, "atol": 1e-4} if not tol else tol))
    backward = thunder.last_backward_traces(jfn)[-1]
    assert backward.fusion_callables
    assert not any("torch.ops.aten" in line or "torch.nn.functional" in line for line in _calls(backward))


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("bad", [100, -3], ids=["past_the_end", "negative"])
def test_out_of_range_class_target_raises_index_error(bad, grad):
    x, y = torch.randn(64, 100, requires_grad=grad), torch.randint(0, 100, (64,))
    y[5] = bad
    with pytest.raises(IndexError):
        F.cross_entropy(x, y)  # eager raises too
    with pytest.raises(IndexError, match=f"index {bad} is out of bounds for a dimension of size 100"):
        _jit(lambda a, b: F.cross_entropy(a, b))(x, y)


def test_out_of_range_gather_index_in_a_fused_row_kernel_raises_index_error():
    # The gather inside a row kernel (log-probabilities at an index). Eager's gather raises
    # RuntimeError; the fused kernel raises IndexError with the index and the dimension's size.
    x, idx = torch.randn(64, 100), torch.randint(0, 100, (64, 1))
    fn = lambda a, i: torch.log_softmax(a, -1).gather(1, i).sum(-1)  # noqa: E731
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(x, idx), fn(x, idx))
    assert len(fusionex.fusion_kernels(jfn)) == 1
    idx[3, 0] = 250
    with pytest.raises(RuntimeError, match="out of bounds"):
        fn(x, idx)
    with pytest.raises(IndexError, match="index 250 is out of bounds for a dimension of size 100"):
        jfn(x, idx)


def test_siblings_reading_one_input_are_one_kernel():
    a = torch.randn(64, 80)
    fn = lambda a: (a.exp() * 2, a.sin() + 1)  # noqa: E731
    jfn = _jit(fn)
    for got, want in zip(jfn(a), fn(a)):
        torch.testing.assert_close(got, want)
    assert len(fusionex.fusion_kernels(jfn)) == 1


@pytest.mark.parametrize("case", ["empty_first", "empty_second", "empty_reduced", "empty_with_row_sum",
                                  "dead_empty_slice"])
def test_empty_tensors_next_to_nonempty_ones(case):
    # A 0-size value in the same region as non-empty ones must not empty their kernel's domain, and a
    # slice nothing reads (left by setitem's decomposition) must not join a kernel.
    def setitem_empty(x):
        x = x.clone()
        x[3:1] = 1.0
        return x * 1

    fns = {
        "empty_first": lambda x: (x[3:1] * 2, x * 3),
        "empty_second": lambda x: (x * 3, x[3:1] * 2),
        "empty_reduced": lambda x: (x[3:1].sum(0), x.exp()),
        "empty_with_row_sum": lambda x: (x[:, :0] + 1, x.sum(-1)),
        "dead_empty_slice": setitem_empty,
    }
    fn, x = fns[case], torch.randn(4, 2)
    # decompose_to_prims keeps the decompositions' dead slice in the trace the fuser sees.
    got, want = thunder.jit(fn, executors=[FUSE_ALL], decompose_to_prims=True)(x), fn(x)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "torch"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32], ids=str)
def test_integer_floor_division_and_remainder_by_a_number(dtype, fuse):
    # Floor semantics on negative operands and divisors; `x // 3` used to fail to trace (the
    # divisor's sign was compared as if it were a tensor).
    x = torch.arange(-70, 70, dtype=dtype).reshape(10, 14)
    fns = [lambda x: x // 3, lambda x: x // -3, lambda x: torch.floor_divide(x, 3), lambda x: x % -3,
           lambda x: 7 // (x.abs() + 1), lambda x: torch.div(x, -4, rounding_mode="floor")]
    for fn in fns:
        jfn = _jit(fn) if fuse else thunder.jit(fn, executors=[])
        got, want = jfn(x), fn(x)
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want)


def test_each_fused_operation_rounds_like_eager():
    # A product rounds before it is subtracted (no multiply-add contraction): a value minus its row
    # maximum is never positive, as in eager, so a mask of x - max(x) > 0 stays empty.
    torch.manual_seed(0)
    c = torch.randn(48, 64)

    def fn(c):
        v = torch.log_softmax(c, 1) * 0.1
        return torch.tanh(v - v.amax(1, keepdim=True)), (v - v.amax(1, keepdim=True) > 0).sum()

    got, want = _jit(fn)(c), fn(c)
    assert want[1] == 0 and got[1] == 0
    torch.testing.assert_close(got[0], want[0])


def test_cpu_kernels_use_512_bit_vectors_where_avx512_has_ifma():
    # -march=native alone keeps 256-bit lanes on every AVX-512 CPU; thunder asks for 512-bit lanes
    # where AVX-512 runs at full clock (IFMA: Ice Lake, Sapphire Rapids, Zen 4 and later).
    from thunder import _core

    flags = _core.fuser_cpu_flags()
    assert "-march=native" in flags and "-ffp-contract=off" in flags
    with open("/proc/cpuinfo") as f:
        cpu_flags = next((line for line in f if line.startswith("flags")), "")
    assert ("-mprefer-vector-width=512" in flags) == (" avx512ifma" in cpu_flags)
    x = torch.randn(33, 777)
    jfn = _jit(softmax)
    torch.testing.assert_close(jfn(x), softmax(x))


def test_cpu_long_float_sums_are_as_accurate_as_eager():
    # One float accumulator per lane adding 60 000 values lost 6e-4 of a 4M-element sum of 0.1 (eager
    # 6e-8); the accumulators are folded into double totals every few steps.
    x = torch.full((4_000_000,), 0.1)
    total = float(x.double().sum())
    for f, exact in ((lambda x: x.sum(), total), (lambda x: (x * 2).mean(), 2 * total / x.numel())):
        jf = thunder.jit(f, executors=[FUSE_ALL])
        got, want = float(jf(x)), float(f(x))
        assert len(fusionex.fusion_kernels(jf)) == 1
        err_thunder, err_eager = abs(got - exact) / exact, abs(want - exact) / exact
        assert err_thunder <= max(4 * err_eager, 1e-7), (err_thunder, err_eager)


@pytest.mark.parametrize("shape", [(4_000_000,), (4000, 1000), (8, 3, 256, 256), (999_983,), (3, 1 << 18)],
                         ids=str)
def test_full_reductions_run_over_rows(shape):
    # x.sum() or a loss's mean over every element was one row (one thread, one GPU block): the domain
    # is split into rows of a few thousand columns whose values are reduced over the rows. A length
    # without a divisor in range (a prime) keeps its single row.
    torch.manual_seed(0)
    x = torch.randn(shape)
    cases = [lambda t: t.sum(), lambda t: ((t - 0.5) ** 2).mean(), lambda t: t.amax() + t.amin(),
             lambda t: F.l1_loss(t, t * 0.5)]
    for fn in cases:
        for arg in (x, x.bfloat16(), x.t() if x.ndim == 2 else x):
            jf = thunder.jit(fn, executors=[FUSE_ALL])
            torch.testing.assert_close(jf(arg), fn(arg), rtol=1e-5 if arg.dtype == torch.float32 else 1.6e-2,
                                       atol=1e-5 * x.numel() ** 0.5)
            (kernel,) = fusionex.fusion_kernels(jf)
            first_axis = kernel.kernel_ir.split("[")[1].split("]")[0].split(", ")[0]
            assert first_axis.endswith("r") == (shape == (999_983,)), kernel.kernel_ir
    # Two passes (a variance) and products keep the single row, and are still right.
    for fn, tol in ((lambda t: t.var(), {}), (lambda t: (1 + t * 1e-4).prod(), {"rtol": 5e-3, "atol": 0})):
        jf = thunder.jit(fn, executors=[FUSE_ALL])
        torch.testing.assert_close(jf(x), fn(x), **tol)
        (kernel,) = fusionex.fusion_kernels(jf)
        assert kernel.kernel_ir.split("[")[1].split("]")[0].split(", ")[0].endswith("r"), kernel.kernel_ir


@pytest.mark.parametrize("shape", [(1000, 999), (3, 70000), (512, 512, 3), (49152,)], ids=str)
def test_split_full_reductions_write_their_elementwise_outputs_through_the_split(shape):
    # A kernel that writes a per-element value beside its full reduction: the split of an axis into
    # rows and columns applies to that output too (it was written at the unsplit axis's strides: a
    # wrong result, 99.9 % of the elements off).
    torch.manual_seed(0)
    x = torch.randn(shape)

    def fn(t):
        y = t * 2
        return y, y.sum(), (y * y).amax(), torch.sigmoid(t)

    jf = thunder.jit(fn, executors=[FUSE_ALL])
    for got, want in zip(jf(x), fn(x)):
        torch.testing.assert_close(got, want)
    (kernel,) = fusionex.fusion_kernels(jf)
    assert kernel.kernel_ir.count("  out") == 4


def _sum_error_bound(terms, dims, roundings=8):
    """Allowed error of a float32 sum of `terms` over `dims`: a few roundings of the sum of their
    magnitudes (any order of additions is within it)."""
    return roundings * 2.0**-24 * terms.double().abs().sum(dims)


@pytest.mark.parametrize("shape", [(4, 1, 256, 257), (3, 5, 100, 100), (2, 1, 1, 65536), (8, 2, 96, 96)], ids=str)
def test_few_long_rows_are_split_into_groups_of_rows(shape):
    # A reduction of few long rows (per-sample losses: `mean(dim=(1, 2, 3))` of an image batch) was
    # a block a row on a GPU. Each row is split into rows of a few thousand columns whose values are
    # reduced over the rows of their group; what is computed from them is per group (a weight per
    # sample read, an element-wise output written beside them).
    torch.manual_seed(0)
    a, b, w = torch.randn(shape), torch.randn(shape), torch.rand(shape[0], 1) + 0.5
    dims = (1, 2, 3)
    exact = {
        "mse": lambda a, b, w: ((a.double() - b.double()) ** 2).mean(dims),
        "weighted": lambda a, b, w: (a.double() * b.double()).sum(dims).unsqueeze(1) * w.double() + w.double().exp(),
    }
    cases = {
        "mse": (lambda a, b, w: ((a - b) ** 2).mean(dim=(1, 2, 3)), lambda a, b, w: (a - b) ** 2 / a[0].numel()),
        "weighted": (lambda a, b, w: (a * b).sum(dim=(1, 2, 3)).unsqueeze(1) * w + w.exp(),
                     lambda a, b, w: (a * b) * w.view(-1, 1, 1, 1)),
    }
    for name, (fn, terms) in cases.items():
        jf = thunder.jit(fn, executors=[FUSE_ALL])
        got, want = jf(a, b, w), fn(a, b, w)
        (kernel,) = fusionex.fusion_kernels(jf)
        assert "groups over 1" in kernel.kernel_ir.splitlines()[0], kernel.kernel_ir
        bound = _sum_error_bound(terms(a, b, w), dims).view(want.shape) + 1e-6 * want.abs().double()
        err = (got.double() - exact[name](a, b, w)).abs()
        assert (err <= bound).all(), (name, err.max())
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    exact_cases = [lambda a, b, w: a.amax(dim=(1, 2, 3)) - (a * b).amin(dim=(1, 2, 3)),
                   lambda a, b, w: (a > 0.5).sum(dim=(1, 2, 3)),
                   lambda a, b, w: (a * 2, (a * 2).amax(dim=(1, 2, 3)))]
    for fn in exact_cases:
        for dt in (torch.float32, torch.bfloat16):
            jf = thunder.jit(fn, executors=[FUSE_ALL])
            args = (a.to(dt), b.to(dt), w)
            torch.testing.assert_close(jf(*args), fn(*args), rtol=0, atol=0)
            (kernel,) = fusionex.fusion_kernels(jf)
            assert "groups over 1" in kernel.kernel_ir.splitlines()[0], kernel.kernel_ir
    # bf16 sums: computed in float, rounded once.
    fn = lambda a, b, w: a.sum(dim=(1, 2, 3))
    jf = thunder.jit(fn, executors=[FUSE_ALL])
    torch.testing.assert_close(jf(a.bfloat16(), b, w), a.bfloat16().double().sum(dims).bfloat16(), rtol=1e-2, atol=0.1)


def test_many_or_short_rows_keep_their_rows():
    # Rows enough for the device (more than 256) or short rows (under 16384) stay rows; so do
    # second passes (a variance per sample) and a row's sum written along the row (split, it was
    # stored once a row: a wrong result).
    for shape, fn in (((300, 16384), lambda x: x.sum(1)), ((8, 12000), lambda x: x.sum(1)),
                      ((4, 65536), lambda x: x.var(1)),
                      ((4, 20000), lambda x: (x * 2, (x.sum(1, keepdim=True) * 0.05).expand_as(x) + 0))):
        x = torch.randn(shape)
        jf = thunder.jit(fn, executors=[FUSE_ALL])
        torch.testing.assert_close(jf(x), fn(x), rtol=1e-5, atol=1e-5 * x.shape[1] ** 0.5)  # sums of randn
        (kernel,) = fusionex.fusion_kernels(jf)
        assert "groups" not in kernel.kernel_ir, kernel.kernel_ir


@pytest.mark.parametrize("rows", [4096, 65536])
def test_cpu_column_float_sums_are_as_accurate_as_eager(rows):
    # A column's float accumulator adding 65536 rows of 0.1 lost 6e-4 (eager 1.5e-7), and 4096-row
    # column sums of |randn| missed assert_close's float tolerance; the accumulators are folded into
    # doubles every few rows, and the partials of the row kernel are combined in double.
    x = torch.randn(rows, 512, generator=torch.Generator().manual_seed(0)).abs() + 0.1
    exact = x.double().sum(0)
    for f, scale in ((lambda x: x.sum(0), 1.0), (lambda x: (x * 2).mean(0), 2.0 / rows),
                     (lambda x: (x.amax(1, keepdim=True), x.sum(0)), None)):
        jf = thunder.jit(f, executors=[FUSE_ALL])
        got, want = jf(x), f(x)
        if scale is None:  # the sum in a kernel that also reduces rows (partials per row block)
            got, want, scale = got[1], want[1], 1.0
            assert "double gfin" in fusionex.fusion_source(jf)
        assert len(fusionex.fusion_kernels(jf)) == 1
        err_thunder = float(((got.double() - exact * scale) / (exact * scale)).abs().max())
        err_eager = float(((want.double() - exact * scale) / (exact * scale)).abs().max())
        assert err_thunder <= max(4 * err_eager, 2e-7), (err_thunder, err_eager)
        torch.testing.assert_close(got, want)


def test_small_converted_tables_are_recomputed_by_each_region_reading_them():
    # A table rounded to bf16 and broadcast (a rotary embedding's cos) read by two regions a matmul
    # separates: each computes it from the table; no kernel writes it and no view of it runs alone.
    def fn(x, w, cos):
        c = cos.to(torch.bfloat16).float()
        y = torch.tanh(x * c) @ w
        return torch.sigmoid(y * c) + 1

    x, w, cos = torch.randn(128, 64, 32), torch.randn(32, 32) / 6, torch.randn(64, 32)
    jfn = _jit(fn)
    torch.testing.assert_close(jfn(x, w, cos), fn(x, w, cos))
    calls = _calls(thunder.last_traces(jfn)[-1])
    fused = [line for line in calls if "= fusion" in line]
    assert len(fused) == 2 and all("(cos" in line or " cos," in line for line in fused), fused
    assert not any("[64, 32]" in line.split("#")[-1] for line in calls if "cos" not in line.split("=")[0])
    assert not any("broadcast_in_dim" in line for line in calls)
    # The backward reads the table the same way; gradients against eager.
    _values_and_grads_match(jfn, fn, [x, w, cos])


def test_program_profile_sums_host_time_per_symbol():
    from thunder import _core

    jfn = _jit(lambda x: torch.relu(x @ x) + 1)
    x = torch.randn(16, 16)
    jfn(x)
    _core.program_profile(reset=True)
    _core.set_program_profiling(True)
    try:
        for _ in range(3):
            jfn(x)
    finally:
        _core.set_program_profiling(False)
    jfn(x)  # not counted
    prof = _core.program_profile(reset=True)
    calls = {name: c for name, (c, _) in prof.items()}
    assert calls.get("torch.matmul") == 3, prof
    assert sum(c for name, c in calls.items() if name.startswith("fusion")) == 3, prof
    assert all(secs > 0 for _, secs in prof.values())
    assert _core.program_profile() == {}


def test_a_small_table_broadcast_over_two_kernels_is_computed_by_each():
    # q and k's rotary products are two kernels (k's is written transposed); the bf16-rounded table
    # both read is computed by each from the table, not by a kernel of its own.
    def fn(q, k, cos):
        c = cos.to(torch.bfloat16).float()
        return torch.tanh(q * c), torch.sigmoid(k * c).transpose(-1, -2).contiguous() * 2

    q, k, cos = torch.randn(8, 4, 64, 32), torch.randn(8, 4, 64, 32), torch.randn(64, 32)
    jfn = _jit(fn)
    for got, want in zip(jfn(q, k, cos), fn(q, k, cos)):
        torch.testing.assert_close(got, want)
    fused = [line for line in _calls(thunder.last_traces(jfn)[-1]) if "= fusion" in line]
    assert len(fused) == 2 and all("(cos, " in line for line in fused), fused


def test_recomputed_small_tables_in_regions_left_to_torch():
    # Regions under the CPU size threshold are left to torch: a region that would recompute the
    # table runs its conversions itself, and the program still defines every value once.
    def fn(x, w, cos):
        c = cos.to(torch.bfloat16).float()
        y = torch.tanh(x * c) @ w
        return torch.sigmoid(y * c) + 1

    # The table is a 64th of the regions' largest tensor (recomputed), all under 4096 elements.
    x, w, cos = torch.randn(64, 2, 4), torch.randn(4, 4), torch.randn(2, 4)
    jfn = thunder.jit(fn, executors=[FUSE_DEFAULT_SIZE])
    torch.testing.assert_close(jfn(x, w, cos), fn(x, w, cos))
    assert not fusionex.fusion_kernels(jfn)
    defined = [line.split("=")[0].strip() for line in _calls(thunder.last_traces(jfn)[-1]) if " = " in line]
    assert len(defined) == len(set(defined)), defined
    _values_and_grads_match(jfn, fn, [x, w, cos])


def _qkv_heads(x, cos):
    # q, k and v split from one projection: q and k computed (one kernel for both, each reading its
    # slice of x with its heads split), v only viewed (left to torch's views, never written).
    b, t, c3 = x.shape
    q, k, v = x.split(c3 // 3, dim=2)
    heads = lambda z: z.reshape(b, t, 4, c3 // 12).transpose(1, 2)  # noqa: E731
    return heads(q) * cos, heads(k) * cos + 1, heads(v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_slices_of_one_projection_join_the_kernels_reading_them(dtype):
    x = torch.randn(2, 8, 192, dtype=dtype)
    cos = torch.randn(8, 16, dtype=dtype)
    jfn = _jit(_qkv_heads)
    got, ref = jfn(x, cos), _qkv_heads(x, cos)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)
    assert got[2].data_ptr() == x.data_ptr() + 128 * x.element_size()  # v: a view of x
    trace = str(thunder.last_traces(jfn)[-1])
    (kernel,) = fusionex.fusion_kernels(jfn)
    assert kernel.kernel_ir.count("  out") == 2, kernel.kernel_ir
    calls = [line for line in trace.splitlines() if not line.lstrip().startswith("#")]
    assert sum("torchex.slice(" in line for line in calls) == 1, trace


def test_outputs_of_one_shape_iterate_together_unless_transposed():
    # Two outputs of one shape computed apart share the kernel's axes; an output beside its own
    # transpose (a square input) does not lay one value along two of its dims.
    a, b = torch.randn(16, 32), torch.randn(16, 32)
    sq = torch.randn(24, 24)
    cases = [
        (lambda a, b: (a[:, :16].exp() + b[:, 16:], a[:, 16:] * 2), (a, b), 1),
        (lambda x: (x * 2, x.t() * 3 + 1), (sq,), None),
        # Two tensors sharing only a small one (a bias): a kernel each, each in its memory order.
        (lambda a, bt, w: (a.exp() + w, bt.t() * 2 + w), (a, torch.randn(32, 16), a[0]), 2),
        (lambda x: (x[:, :5].reshape(-1) * 2, x[:, 5:10].reshape(-1) + 1), (sq,), None),  # merges
        (lambda x: (x[:, 4:12].reshape(24, 2, 4) * 2, x[4:8].reshape(4, 4, 6).exp()), (sq,), None),
    ]
    for fn, args, kernels in cases:
        jfn = _jit(fn)
        for g, r in zip(jfn(*args), fn(*args)):
            torch.testing.assert_close(g, r)
        if kernels is not None:
            assert len(fusionex.fusion_kernels(jfn)) == kernels, str(thunder.last_traces(jfn)[-1])


def test_contiguous_of_views_alone_is_torchs():
    # `.transpose(1, 2).contiguous()` with nothing else to compute runs as torch's contiguous(): the
    # input itself when it is laid out so already (attention's output in q's [B, T, H, D] layout),
    # a copy otherwise, as eager; no kernel that always copies.
    def fn(y):
        return y.transpose(1, 2).contiguous().view(2, 64, -1)

    laid_out = torch.randn(2, 64, 4, 16).transpose(1, 2)
    heads_first = torch.randn(2, 4, 64, 16)
    jfn = _jit(fn)
    for y in (laid_out, heads_first):
        got = jfn(y)
        torch.testing.assert_close(got, fn(y))
        assert got.is_contiguous()
        assert (got.data_ptr() == y.data_ptr()) == (y is laid_out)
        assert not fusionex.fusion_kernels(jfn)
    # Beside other work it is still part of the kernel (no copy of its own).
    jfn2 = _jit(lambda y: y.transpose(1, 2).contiguous() * 2)
    torch.testing.assert_close(jfn2(heads_first), heads_first.transpose(1, 2) * 2)
    assert len(fusionex.fusion_kernels(jfn2)) == 1
