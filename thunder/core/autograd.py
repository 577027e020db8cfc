"""Training: the bridge between thunder's forward/backward programs and torch.autograd.

When grad mode is on and an input (or parameter) requires grad, the C++ training pipeline
(csrc/executors/pipeline.h, run_training_pipeline) differentiates the trace, chooses what the forward
saves and splits it into a forward program, returning `(output, saved)`, and a backward program,
taking `(*saved, *cotangents)` and returning one gradient per input. This module only wires them into
a `torch.autograd.Function`: the forward runs the forward program and saves what it returned, the
backward runs the backward program. No compiler logic lives here.
"""

from __future__ import annotations

import torch

from thunder import _core
from thunder.core import cudagraphs

__all__ = ["ThunderAutogradFunction", "build_training_entry", "checkpoint_region", "checkpoint_regions"]

_DOUBLE_BACKWARD = (
    "thunder: differentiating through the backward of a thunder-compiled function (double "
    "backward, create_graph=True) is not supported; compute higher-order gradients outside "
    "thunder.jit"
)


class _Bridge:
    """What one training cache entry runs: the two programs and how outputs map to cotangents."""

    __slots__ = ("backward", "diff_idx", "forward", "graphs", "nondiff_idx")


def _collect(x, out):
    """The tensors of a program's output, in the order the core lists its tensor leaves."""
    if isinstance(x, torch.Tensor):
        out.append(x)
    elif isinstance(x, (tuple, list)):
        for v in x:
            _collect(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            _collect(v, out)


def _rebuild(x, leaves):
    if isinstance(x, torch.Tensor):
        return next(leaves)
    if type(x) is tuple:
        return tuple(_rebuild(v, leaves) for v in x)
    if type(x) is list:
        return [_rebuild(v, leaves) for v in x]
    if type(x) is dict:
        return {k: _rebuild(v, leaves) for k, v in x.items()}
    if isinstance(x, tuple):  # a named tuple
        return type(x)(*(_rebuild(v, leaves) for v in x))
    return x


class ThunderAutogradFunction(torch.autograd.Function):
    """Runs a forward program inside torch.autograd; its backward runs the backward program."""

    @staticmethod
    def forward(ctx, bridge, holder, *inputs):
        if bridge.graphs is None:
            out, saved = bridge.forward(*inputs)
        else:
            out, saved, ctx.thunder_graph_token = bridge.graphs.forward(inputs)
        leaves = []
        _collect(out, leaves)
        holder.append(out)
        ctx.bridge = bridge
        ctx.save_for_backward(*saved)
        if bridge.nondiff_idx:
            # One tensor at a differentiable and a non-differentiable place (the program computed a
            # value once that eager computes twice, under torch.no_grad() and outside it): the
            # non-differentiable place gets its own copy, as eager's is a tensor of its own.
            nondiff = set(bridge.nondiff_idx)
            diff_ids = {id(t) for i, t in enumerate(leaves) if i not in nondiff}
            for i in bridge.nondiff_idx:
                if id(leaves[i]) in diff_ids:
                    leaves[i] = leaves[i].clone()
            ctx.mark_non_differentiable(*[leaves[i] for i in bridge.nondiff_idx])
        return tuple(leaves)

    @staticmethod
    def backward(ctx, *grads):
        if torch.is_grad_enabled():
            raise RuntimeError(_DOUBLE_BACKWARD)
        bridge = ctx.bridge
        # The backward program gets the only references to the saved tensors: unpack them into a
        # list, drop the node's saved variables (unless the graph is retained), and let the program
        # take the list's references, so each saved tensor is freed right after its last use in the
        # backward instead of when the whole backward returns.
        args = list(ctx.saved_tensors)
        ctx.maybe_clear_saved_tensors()
        args.extend(grads[i] for i in bridge.diff_idx)
        if bridge.graphs is None:
            result = bridge.backward.run_consuming(args)
        else:
            result = bridge.graphs.backward(ctx.thunder_graph_token, args)
        return (None, None, *result)


def linear_backward(grad_output, input, weight, output_mask):
    """Runs ltorch.linear_backward: the gradients of F.linear for a 2-D weight, as eager's
    addmm/mm backward computes them."""
    gi = gw = gb = None
    flat = grad_output.dim() == 2  # a batch of rows already: no reshapes (a call each)
    g2 = grad_output if flat else grad_output.reshape(-1, grad_output.shape[-1])
    if output_mask[0]:
        gi = grad_output.mm(weight) if flat else grad_output.matmul(weight)
    if output_mask[1]:
        gw = g2.t().mm(input if flat else input.reshape(-1, input.shape[-1]))
    if output_mask[2]:
        gb = g2.sum(0)
    return gi, gw, gb


def rms_norm_backward(grad_output, input, normalized_shape, weight, eps, output_mask):
    """Runs ltorch.rms_norm_backward: the gradients of F.rms_norm, recomputing its rstd."""
    lead = input.dim() - len(normalized_shape)
    dims = tuple(range(lead, input.dim()))
    low = input.dtype in (torch.float16, torch.bfloat16)
    x = input.float() if low else input
    if eps is None:
        eps = torch.finfo(x.dtype).eps
    rstd = torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + eps)
    xhat = x * rstd
    g = grad_output.to(x.dtype)
    gw = None
    if weight is not None:
        if output_mask[1]:
            gw = (g * xhat).sum(tuple(range(lead))).to(weight.dtype) if lead else (
                g * xhat).to(weight.dtype)
        g = g * weight.to(x.dtype)
    gx = None
    if output_mask[0]:
        gx = (rstd * (g - xhat * (g * xhat).mean(dims, keepdim=True))).to(input.dtype)
    return gx, gw


# torch's fused attention backends (torch.nn.attention.SDPBackend's values), as _fused_sdp_choice
# returns them.
_SDPA_FLASH, _SDPA_EFFICIENT, _SDPA_CUDNN = 1, 2, 3
_aten = torch.ops.aten
# The argument names each direct call is written for (the private ops' signatures differ across
# torch versions: cuDNN's took no mask and no logsumexp flag before 2.5).
_SDPA_SIGNATURES = {
    _SDPA_FLASH: (
        ("_scaled_dot_product_flash_attention",
         "query key value dropout_p is_causal return_debug_mask scale"),
        ("_scaled_dot_product_flash_attention_backward",
         ("grad_out query key value out logsumexp cum_seq_q cum_seq_k max_q max_k dropout_p "
          "is_causal philox_seed philox_offset scale"))),
    _SDPA_EFFICIENT: (
        ("_scaled_dot_product_efficient_attention",
         "query key value attn_bias compute_log_sumexp dropout_p is_causal scale"),
        ("_scaled_dot_product_efficient_attention_backward",
         ("grad_out_ query key value attn_bias out logsumexp philox_seed philox_offset "
          "dropout_p grad_input_mask is_causal scale"))),
    _SDPA_CUDNN: (
        ("_scaled_dot_product_cudnn_attention",
         ("query key value attn_bias compute_log_sumexp dropout_p is_causal return_debug_mask "
          "scale")),
        ("_scaled_dot_product_cudnn_attention_backward",
         ("grad_out query key value out logsumexp philox_seed philox_offset attn_bias cum_seq_q "
          "cum_seq_k max_q max_k dropout_p is_causal scale"))),
}
_sdpa_direct_ok = {}


def _sdpa_backend_direct(choice):
    """Whether this torch's ops of backend `choice` have the signatures the direct calls use."""
    ok = _sdpa_direct_ok.get(choice)
    if ok is None:
        ok = choice in _SDPA_SIGNATURES
        for name, args in _SDPA_SIGNATURES.get(choice, ()):
            op = getattr(_aten, name, None)
            ok = ok and op is not None and [a.name for a in op.default._schema.arguments] == args.split()
        _sdpa_direct_ok[choice] = ok
    return ok


def _sdpa_direct(query, key, value, dropout_p, is_causal, scale):
    """The kernel F.scaled_dot_product_attention would run, called directly when it is CUDA's flash,
    memory-efficient or cuDNN attention and F.scaled_dot_product_attention would pass the inputs
    unchanged (no mask; for flash, head dims a multiple of 8): no torch graph is recorded, and the
    backward calls the kernel's own backward. Returns (output, state for the backward), or None
    (eager's path then)."""
    choose = getattr(torch, "_fused_sdp_choice", None)  # private: eager's path where it is gone
    if choose is None:
        return None
    choice = int(choose(query, key, value, None, dropout_p, is_causal, scale=scale))
    if not _sdpa_backend_direct(choice):
        return None
    if choice == _SDPA_FLASH:
        if query.shape[-1] % 8 or value.shape[-1] % 8:
            return None  # F.scaled_dot_product_attention pads the head dims
        r = _aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, False,
                                                      scale=scale)
        return r[0], (choice, r[0], r[1:8], dropout_p, is_causal, scale)
    if choice == _SDPA_EFFICIENT:
        r = _aten._scaled_dot_product_efficient_attention(query, key, value, None, True, dropout_p,
                                                          is_causal, scale=scale)
        return r[0], (choice, r[0], r[1:4], dropout_p, is_causal, scale)
    r = _aten._scaled_dot_product_cudnn_attention(query, key, value, None, True, dropout_p,
                                                  is_causal, False, scale=scale)
    return r[0], (choice, r[0], r[1:8], dropout_p, is_causal, scale)


def sdpa_autograd_forward(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    """Runs ltorch.sdpa_autograd_forward: the fused kernel eager would run (flash, cuDNN, ...) and what
    its backward needs. CUDA's flash, memory-efficient and cuDNN kernels are called directly; otherwise
    F.scaled_dot_product_attention runs under torch autograd. Returns (output, handle): the handle,
    an empty tensor, carries the kernel's saved state (or torch's graph) to the backward and lives as
    long as torch.autograd keeps the saved tensors."""
    handle = torch.empty((0,), dtype=torch.int64, device=query.device)
    if query.is_cuda and attn_mask is None and not enable_gqa:
        direct = _sdpa_direct(query, key, value, dropout_p, is_causal, scale)
        if direct is not None:
            handle._thunder_sdpa = direct[1]
            return direct[0], handle
    q, k, v = (t.detach().requires_grad_(True) for t in (query, key, value))
    kwargs = {"attn_mask": attn_mask, "dropout_p": dropout_p, "is_causal": is_causal,
              "scale": scale}
    if enable_gqa:
        kwargs["enable_gqa"] = True
    with torch.enable_grad():
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)
    handle._thunder_torch_graph = (out, (q, k, v))
    return out.detach(), handle


def sdpa_autograd_backward(grad_out, handle, query, key, value, needs):
    """Runs ltorch.sdpa_autograd_backward: the backward of the attention its forward ran."""
    state = getattr(handle, "_thunder_sdpa", None)
    if state is not None:
        kind, out, saved, dropout_p, is_causal, scale = state
        if kind == _SDPA_FLASH:
            lse, cum_q, cum_k, max_q, max_k, seed, offset = saved
            grads = _aten._scaled_dot_product_flash_attention_backward(
                grad_out, query, key, value, out, lse, cum_q, cum_k, max_q, max_k, dropout_p,
                is_causal, seed, offset, scale=scale)
        elif kind == _SDPA_CUDNN:
            lse, cum_q, cum_k, max_q, max_k, seed, offset = saved
            grads = _aten._scaled_dot_product_cudnn_attention_backward(
                grad_out, query, key, value, out, lse, seed, offset, None, cum_q, cum_k, max_q, max_k,
                dropout_p, is_causal, scale=scale)
        else:
            lse, seed, offset = saved
            grads = _aten._scaled_dot_product_efficient_attention_backward(
                grad_out, query, key, value, None, out, lse, seed, offset, dropout_p,
                [bool(n) for n in needs] + [False], is_causal, scale=scale)
        return tuple(g if n else None for g, n in zip(grads, needs))
    out, inputs = handle._thunder_torch_graph
    wanted = [x for x, n in zip(inputs, needs) if n]
    grads = iter(torch.autograd.grad(out, wanted, grad_out, retain_graph=True))
    return tuple(next(grads) if n else None for n in needs)


def checkpoint_region(begin):
    """Runs ltorch.checkpoint_region: a marker for the autograd pass, nothing to do at run time."""


class checkpoint_regions:
    """While a function is captured: torch.utils.checkpoint.checkpoint calls run their function
    directly, between two ltorch.checkpoint_region markers the autograd pass reads (the values
    computed inside are recomputed in the backward instead of being saved). `mode` is the active
    capture.CaptureMode. Both the reentrant and the non-reentrant forms are handled, however the
    user imported `checkpoint`."""

    def __init__(self, mode):
        self.mode = mode
        self.marker = _core.find_symbol("ltorch", "checkpoint_region")

    def _mark(self, begin):
        self.mode._record(self.marker, (begin,), {})

    def __enter__(self):
        import torch.utils.checkpoint as ckpt

        self.ckpt = ckpt
        self.saved = (ckpt._checkpoint_without_reentrant_generator, ckpt.CheckpointFunction)
        outer = self

        def generator(fn, preserve_rng_state=True, context_fn=None, determinism_check=None,
                      debug=False, early_stop=True, *args, **kwargs):
            outer._mark(True)
            yield
            outer._mark(False)

        class Reentrant:
            @staticmethod
            def apply(function, preserve, *args):
                outer._mark(True)
                try:
                    return function(*args)
                finally:
                    outer._mark(False)

        ckpt._checkpoint_without_reentrant_generator = generator
        ckpt.CheckpointFunction = Reentrant
        return self

    def __exit__(self, *exc):
        self.ckpt._checkpoint_without_reentrant_generator, self.ckpt.CheckpointFunction = self.saved
        return False


# Function.apply without its per-call Python preamble (binding default arguments, unwrapping
# functorch wrappers): the C++ apply directly, unless a torch.func transform is active.
_fast_apply = super(torch.autograd.Function, ThunderAutogradFunction).apply
_functorch_active = torch._C._are_functorch_transforms_active


def _runner(bridge):
    slow_apply = ThunderAutogradFunction.apply

    def run(*inputs):
        holder = []
        if _functorch_active():
            leaves = slow_apply(bridge, holder, *inputs)
        else:
            leaves = _fast_apply(bridge, holder, *inputs)
        out = holder[0]
        if isinstance(out, torch.Tensor):
            return leaves[0]
        return _rebuild(out, iter(leaves))

    return run


def build_training_entry(trace, executors, decompose=False, rematerialize=True, fuse_random=False,
                         cuda_graphs=False):
    """Compiles `trace` for training. Returns (program, forward traces, backward traces, stage
    times, CUDA graphs or None), or None when no output can carry a gradient (the inference program
    then suffices)."""
    r = _core.run_training_pipeline(trace, executors, decompose, rematerialize, fuse_random)
    leaves = r["differentiable_leaves"]
    if not any(leaves):
        return None
    fwd_traces, fwd_times = r["forward"]
    bwd_traces, bwd_times = r["backward"]
    bridge = _Bridge()
    bridge.forward = _core.Program.build(fwd_traces[-1])
    bridge.backward = _core.Program.build(bwd_traces[-1])
    bridge.diff_idx = tuple(i for i, d in enumerate(leaves) if d)
    bridge.nondiff_idx = tuple(i for i, d in enumerate(leaves) if not d)
    bridge.graphs = None
    if cuda_graphs:
        fwd_plan = cudagraphs.plan(fwd_traces[-1], "training forward")
        if fwd_plan is not None and cudagraphs.plan(bwd_traces[-1], "training backward") is not None:
            bridge.graphs = cudagraphs.TrainingGraphs(bridge.forward, bridge.backward, fwd_plan, r["num_saved"])
    program = _core.runner_program(fwd_traces[-1], _runner(bridge))
    times = list(fwd_times) + [("backward " + name, secs) for name, secs in bwd_times]
    return program, fwd_traces, bwd_traces, times, bridge.graphs
