"""Memory behaviour of thunder's forward and backward programs: the backward frees each saved tensor
after its last use (not when the whole backward returns), and the forward frees intermediates after
their last use, as eager does."""

from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef

import thunder
from thunder.core.transforms import register_grad
from thunder.extend import OperatorExecutor

_ex = OperatorExecutor("grad_memory_probe_ex")
_watched: list[StorageWeakRef] = []
_seen_in_backward: list[list[bool]] = []

# watch(t): returns t, remembering a weak reference to its storage.
watch = _ex.register_operator("watch", meta=lambda t: torch.empty_like(t), fn=lambda t: t)
# probe(t): t * 1; its backward records which watched storages are already freed.
probe = _ex.register_operator("probe", meta=lambda t: torch.empty_like(t), fn=lambda t: t * 1)


def _watch_forward(t):
    if t.device.type != "meta":  # (tracing runs the augmented forward on meta tensors)
        _watched.append(StorageWeakRef(t.untyped_storage()))
    return t, ()


def _probe_backward(g):
    _seen_in_backward.append([w.expired() for w in _watched])
    return (g,)


register_grad(watch, augmented_forward=_watch_forward, backward=lambda g: (g,))
register_grad(probe, augmented_forward=lambda t: (t * 1, ()), backward=_probe_backward)


def _f(x):
    # tanh's backward reads its output y; y's last use in the backward comes before probe's backward.
    y = watch(torch.tanh(probe(x * 2)))
    return (y * 3).sum()


def test_backward_frees_a_saved_tensor_after_its_last_use():
    _watched.clear()
    _seen_in_backward.clear()
    x = torch.randn(64, 64, requires_grad=True)
    jf = thunder.jit(_f, executors=[_ex, "torch"])
    loss = jf(x)
    assert len(_watched) == 1
    assert not _watched[0].expired(), "tanh's output should be saved for the backward"
    loss.backward()
    assert _seen_in_backward == [[True]], "the saved tanh output outlived its last use"
    torch.testing.assert_close(x.grad, 6 * (1 - torch.tanh(2 * x.detach()) ** 2))


def test_backward_with_retain_graph_keeps_saved_tensors_for_a_second_backward():
    _watched.clear()
    _seen_in_backward.clear()
    x = torch.randn(64, 64, requires_grad=True)
    loss = thunder.jit(_f, executors=[_ex, "torch"])(x)
    loss.backward(retain_graph=True)
    assert _seen_in_backward == [[False]]
    loss.backward()
    assert _seen_in_backward == [[False], [True]]
    torch.testing.assert_close(x.grad, 12 * (1 - torch.tanh(2 * x.detach()) ** 2))


def test_backward_frees_saved_tensors_under_saved_tensor_hooks():
    _watched.clear()
    _seen_in_backward.clear()
    packed = []

    def pack(t):
        packed.append(StorageWeakRef(t.untyped_storage()))
        return t

    x = torch.randn(64, 64, requires_grad=True)
    jf = thunder.jit(_f, executors=[_ex, "torch"])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = jf(x)
    assert packed
    loss.backward()
    assert _seen_in_backward == [[True]]


def _profile_peak(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    level = peak = 0
    for _, n in events:
        level += n
        peak = max(peak, level)
    return peak


def test_forward_frees_intermediates_after_their_last_use():
    def chain(x):
        for _ in range(8):
            x = torch.sin(x) * 1.5
        return x

    x = torch.randn(256, 1024)  # 1 MiB per intermediate
    jchain = thunder.jit(chain, executors=["torch"])
    jchain(x)
    eager_peak = _profile_peak(lambda: chain(x))
    thunder_peak = _profile_peak(lambda: jchain(x))
    assert thunder_peak <= eager_peak, (thunder_peak, eager_peak)
    assert thunder_peak <= 3 * x.numel() * x.element_size()


def test_training_step_peak_memory_is_at_most_eagers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Tanh())
                                  for _ in range(6)])
    jmodel = thunder.jit(model, executors=["torch"])
    x = torch.randn(512, 256)
    for m in (model, jmodel):  # allocate the gradients
        m(x).sum().backward()
    eager_peak = _profile_peak(lambda: model(x).sum().backward())
    thunder_peak = _profile_peak(lambda: jmodel(x).sum().backward())
    assert thunder_peak <= eager_peak, (thunder_peak, eager_peak)


def _jit_run_and_drop(model, x, train):
    jmodel = thunder.jit(model, executors=["torch"])
    if train:
        jmodel(x).sum().backward()
    else:
        jmodel(x)
    # An object thunder carries through the trace as an opaque value. (The torch executor only:
    # fused kernels are interned symbols, not released with the cache entry yet.)
    jf = thunder.jit(lambda a: torch.zeros_like(a, memory_format=torch.preserve_format) + a,
                     executors=["torch"])
    jf(x)


def test_object_table_stays_bounded_when_jitted_callables_die():
    import gc

    from thunder import _core

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU(), torch.nn.Linear(4, 2))
    x = torch.randn(3, 4)
    for train in (False, True):
        _jit_run_and_drop(model, x, train)
        gc.collect()
        base = _core.live_objects()
        for _ in range(10):
            _jit_run_and_drop(model, x, train)
        gc.collect()
        assert _core.live_objects() == base, (train, base, _core.live_objects())


def test_jitted_module_and_its_programs_are_freed_after_del():
    import gc
    import weakref

    model = torch.nn.Linear(4, 4)
    jmodel = thunder.jit(model, executors=["torch"])
    jmodel(torch.randn(2, 4)).sum().backward()
    ref = weakref.ref(model)
    del model, jmodel
    gc.collect()
    assert ref() is None


def test_backward_receives_only_the_saved_values_it_reads():
    # layer_norm's bias takes part in the forward only: once its backward is fused nothing in it reads
    # b, so the forward does not save it and the backward does not take it (aten's
    # native_layer_norm_backward, where the fuser is off, takes b and keeps it).
    import pytest
    import torch.nn.functional as F

    from thunder.executors import fusionex

    if not fusionex.available("cpu"):
        pytest.skip("no C++ compiler for the fuser")

    def fn(x, w, b):
        return F.layer_norm(x, (256,), w, b)

    x, w, b = (torch.randn(64, 256), torch.randn(256), torch.randn(256))
    ta = [t.clone().requires_grad_() for t in (x, w, b)]
    ea = [t.clone().requires_grad_() for t in (x, w, b)]
    jfn = thunder.jit(fn, executors=[thunder.fusion_executor])
    g = torch.randn(64, 256)
    jfn(*ta).backward(g)
    fn(*ea).backward(g)
    for got, want in zip(ta, ea):
        torch.testing.assert_close(got.grad, want.grad)
    header = str(thunder.last_backward_traces(jfn)[-1]).split("def backward(")[1].split(")")[0]
    names = [a.strip() for a in header.split(",")]
    assert "b" not in names and names[0] == "x" and "w" in names and len(names) == 5, header
