"""Replaying compiled programs as CUDA graphs (the `cuda_graphs=True` compile option).

A program launches its kernels one by one from the host; when the kernels are small or many, the
host's launch work sets the pace, not the GPU. With `cuda_graphs=True`, each program of a cache entry
(the inference program, or the training forward and backward) runs normally once, is then captured
as a torch.cuda.CUDAGraph and replayed from then on: one launch for the whole program.

What a replay relies on (the core checks the program: csrc/executors/cuda_graphs.h):
- all its work is CUDA work on one device, with no state read on the host per run. fuse_random's
  philox_state is refused; torch's own random operations are graph-safe (torch advances their
  generator's offset at every replay, so each replay draws new numbers).
- Parameters, and inputs the program writes in place, are read at their own address: a replay checks
  those addresses and captures again when one moved. Other inputs are copied into buffers the graph
  owns.
- The graph's outputs live in its memory pool and the next replay overwrites them, so what leaves
  the graph is copied: the forward's outputs and the backward's gradients. The tensors a training
  forward saves for its backward stay in the pool; the forward is replayed again only when the
  backward of the previous replay has run (or its autograd graph is gone), otherwise it runs
  normally.
This module is the adapter to torch's graph API; the decisions above come from the core's plan.
"""

from __future__ import annotations

import functools
import sys
import warnings
import weakref

import torch

from thunder import _core
from thunder.core.capture import _THUNDER_DIR, _TORCH_DIR

__all__ = ["InferenceGraph", "TrainingGraphs", "plan"]

# Normal runs before a capture: lazy initialisation (library handles, workspaces, kernel
# compilation) happens outside the graph.
WARMUP_RUNS = 1
# Captures of one program (a moved parameter means another); then it runs normally.
MAX_CAPTURES = 3

_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)


def _warn(message):
    """A UserWarning at the innermost frame outside thunder and torch (the user's call)."""
    level, f = 1, sys._getframe(0)
    while f is not None and f.f_code.co_filename.startswith((_THUNDER_DIR, _TORCH_DIR)):
        f, level = f.f_back, level + 1
    warnings.warn(f"thunder.jit(cuda_graphs=True): {message}", UserWarning, stacklevel=level)


def plan(trace, what):
    """The core's plan for `trace`; warns and returns None when it cannot be replayed."""
    p = _core.plan_cuda_graph(trace)
    if p["blocker"]:
        _warn(f"the {what} runs without a CUDA graph: {p['blocker']}")
        return None
    return p


def _clear_cublas_workspaces():
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()


def _end_rng_capture(device):
    """After a failed capture torch's generator still counts offsets for the abandoned graph (random
    operations then raise); it continues from a copy of its state (same seed and offset)."""
    gen = torch.cuda.default_generators[device]
    try:
        gen.graphsafe_set_state(gen.clone_state())
    except (AttributeError, RuntimeError) as e:  # torch < 2.5: no graph-safe state to replace
        _warn(f"torch's CUDA random state may be unusable after the failed capture: {e}")


@functools.cache
def _capture_stream(device):
    """A side stream of `device` to capture on (torch's default capture stream belongs to whichever
    device was current at the process's first capture)."""
    return torch.cuda.Stream(device=device)


def _copy_out(x):
    """`x` with each tensor copied out of the graph's memory."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if type(x) is tuple:
        return tuple(_copy_out(v) for v in x)
    if type(x) is list:
        return [_copy_out(v) for v in x]
    if type(x) is dict:
        return {k: _copy_out(v) for k, v in x.items()}
    if isinstance(x, tuple):  # a named tuple
        return type(x)(*(_copy_out(v) for v in x))
    return x


def _copy_tensors_out(xs):
    """Fresh copies of the tensors in `xs` (None stays None), with one multi-tensor copy."""
    src = [x for x in xs if x is not None]
    dst = [torch.empty_like(x) for x in src]
    if dst:
        torch._foreach_copy_(dst, src)
    it = iter(dst)
    return [None if x is None else next(it) for x in xs]


class _Runner:
    """One program behind a CUDA graph: normal runs until captured, then replays. `run(list)` runs
    the program normally; `fixed(i, x)` says whether input i is read at its own address."""

    def __init__(self, run, fixed, pool, what, device):
        self.run = run
        self.device = device  # the CUDA device index the program runs on
        self.fixed = fixed
        self.pool = pool
        self.what = what
        self.graph = None
        self.output = None
        self.fixed_ptrs = []  # (input index, data_ptr) the graph reads in place
        self.copied = []  # (input index, buffer) the graph reads a copy from
        self.normal_runs = 0
        self.captures = 0
        self.replays = 0
        self.failed = None  # why this program no longer tries graphs

    def stats(self):
        return {"captures": self.captures, "replays": self.replays, "normal_runs": self.normal_runs,
                "failed": self.failed}

    def normal(self, inputs):
        self.normal_runs += 1
        return self.run(inputs)

    def __call__(self, inputs):
        """Returns (output, replayed): on a replay the output is the graph's (overwritten by the
        next replay)."""
        if self.failed is not None or self.normal_runs < WARMUP_RUNS:
            return self.normal(inputs), False
        if self.graph is not None and any(inputs[i].data_ptr() != p for i, p in self.fixed_ptrs):
            self._drop_graph()  # a parameter moved: capture again
        if self.graph is None and not self._capture(inputs):
            return self.normal(inputs), False
        for i, buf in self.copied:
            buf.copy_(inputs[i])
        self.graph.replay()
        self.replays += 1
        return self.output, True

    def _capture(self, inputs):
        if self.captures >= MAX_CAPTURES:
            self._give_up(f"the addresses of its parameters changed {MAX_CAPTURES} times")
            return False
        self.captures += 1
        fixed, copied, static = [], [], list(inputs)
        for i, x in enumerate(inputs):
            if not isinstance(x, torch.Tensor):
                continue
            if self.fixed(i, x):
                fixed.append((i, x.data_ptr()))
            else:
                static[i] = torch.empty_like(x)
                copied.append((i, static[i]))
        graph = torch.cuda.CUDAGraph()
        # cuBLAS keeps one workspace per stream, allocated at its first use there. Dropped before and
        # after the capture, the workspace this graph's matmuls use is allocated inside its own pool,
        # not borrowed from memory another graph's pool (or nobody) owns later.
        _clear_cublas_workspaces()
        try:
            # Captured on the program's device (its stream and generator), whichever device is current.
            with torch.cuda.device(self.device), torch.cuda.graph(graph, pool=self.pool,
                                                                  stream=_capture_stream(self.device)):
                output = self.run(list(static))
        except Exception as e:  # noqa: BLE001 - any failure to capture means: run normally
            _end_rng_capture(self.device)
            self._give_up(f"capturing it failed: {type(e).__name__}: {e}")
            return False
        finally:
            _clear_cublas_workspaces()
        self.graph, self.output, self.fixed_ptrs, self.copied = graph, output, fixed, copied
        return True

    def _drop_graph(self):
        self.graph = self.output = None
        self.copied = []

    def _give_up(self, why):
        self.failed = why
        self._drop_graph()
        _warn(f"the {self.what} runs without a CUDA graph from now on: {why}")


def _read_in_place(plan):
    """Which inputs a graph of the planned program reads at their own address: parameters, and
    inputs the program writes in place."""
    written = set(plan["written_inputs"])
    return lambda i, x: isinstance(x, torch.nn.Parameter) or i in written


class InferenceGraph:
    """The callable of an inference cache entry: the program replayed as a CUDA graph, its outputs
    copied out."""

    def __init__(self, program, plan):
        self.runner = _Runner(lambda ins: program(*ins), _read_in_place(plan), torch.cuda.graph_pool_handle(),
                              "program", plan["device"])

    def __call__(self, *inputs):
        out, replayed = self.runner(list(inputs))
        return _copy_out(out) if replayed else out

    def stats(self):
        return {"program": self.runner.stats()}


class _Token:
    """A forward replay, held by its autograd node: released when its backward has run."""

    __slots__ = ("__weakref__", "released")

    def __init__(self):
        self.released = False


class TrainingGraphs:
    """The forward and backward programs of a training cache entry behind CUDA graphs sharing one
    memory pool (the backward's temporaries reuse the forward's)."""

    def __init__(self, forward, backward, forward_plan, num_saved):
        pool = torch.cuda.graph_pool_handle()
        device = forward_plan["device"]
        self.fwd = _Runner(lambda ins: forward(*ins), _read_in_place(forward_plan), pool, "training forward", device)
        # The saved tensors are the forward graph's outputs (or its fixed inputs): read in place;
        # the cotangents are copied in.
        self.bwd = _Runner(backward.run_consuming, lambda i, x: i < num_saved, pool, "training backward", device)
        self.pending = None  # a weak reference to the last replay's token

    def stats(self):
        return {"forward": self.fwd.stats(), "backward": self.bwd.stats()}

    def forward(self, inputs):
        """(outputs, saved, token): token is None unless the forward was replayed."""
        token = self.pending() if self.pending is not None else None
        if token is not None and not token.released:
            # The previous replay's saved tensors are still waiting for its backward.
            out, saved = self.fwd.normal(list(inputs))
            return out, saved, None
        (out, saved), replayed = self.fwd(list(inputs))
        if not replayed:
            return out, saved, None
        token = _Token()
        self.pending = weakref.ref(token)
        return _copy_out(out), saved, token

    def backward(self, token, args):
        """The gradients of the replay `token` (None: of a normal run); `args` are its saved tensors and
        the cotangents."""
        if token is None:
            return self.bwd.normal(args)
        result, replayed = self.bwd(args)
        if replayed:
            result = _copy_tensors_out(list(result))
        if _keep_graph is not None and not _keep_graph():
            token.released = True
        return result
