"""A module trained through thunder and eagerly side by side (the helper of tests/test_nn_modules.py
and scripts/eager_differential.py)."""

import contextlib
import copy

import torch

import thunder


def train_two_steps(factory, shape, dtype=torch.float32, autocast=False, executors=None, tol=None,
                    generator=None):
    """Trains factory()'s module eagerly and jitted for two SGD steps on the same random inputs of
    `shape` (None: EmbeddingBag's indices and offsets) and cotangents; asserts the outputs, the input
    and parameter gradients and the buffers match. `autocast`: under CPU bfloat16 autocast."""
    torch.manual_seed(0)
    ref = factory().to(dtype).train()
    mod = copy.deepcopy(ref)
    jm = thunder.jit(mod) if executors is None else thunder.jit(mod, executors=executors)
    if tol is None:
        # float32: sums over a batch in another order differ by a few units in the 5th digit.
        tol = {"rtol": 1e-7, "atol": 1e-7} if dtype == torch.float64 else {"rtol": 5e-5, "atol": 5e-5}
    if autocast:
        tol = {"rtol": 2e-2, "atol": 2e-2}
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    for step in range(2):
        if shape is None:
            args_r = args_j = (torch.tensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.tensor([0, 4]))
            x_r = x_j = None
        else:
            x = torch.randn(shape, generator=generator, dtype=dtype)
            x_r, x_j = x.clone().requires_grad_(), x.clone().requires_grad_()
            args_r, args_j = (x_r,), (x_j,)
        with amp():
            want, got = ref(*args_r), jm(*args_j)
        assert got.dtype == want.dtype, (got.dtype, want.dtype)
        torch.testing.assert_close(got, want, **tol)
        cot = torch.randn(want.shape, generator=generator, dtype=want.dtype)
        want.backward(cot)
        got.backward(cot)
        if x_r is not None:
            torch.testing.assert_close(x_j.grad, x_r.grad, **tol, msg=lambda m, step=step: f"input grad at step {step}: {m}")
        for (name, pr), pj in zip(ref.named_parameters(), mod.parameters()):
            torch.testing.assert_close(pj.grad, pr.grad, **tol,
                                       msg=lambda m, name=name, step=step: f"{name}.grad at step {step}: {m}")
            with torch.no_grad():
                pr -= 0.1 * pr.grad
                pj -= 0.1 * pj.grad
            pr.grad = pj.grad = None
        for (name, br), bj in zip(ref.named_buffers(), mod.buffers()):
            torch.testing.assert_close(bj, br, **tol, msg=lambda m, name=name, step=step: f"buffer {name} at step {step}: {m}")
