"""Whole models under thunder.jit against eager PyTorch: forward in eval and train mode (dropout
under the same seed), GPT's loss path, gradients through loss.backward(), an optimizer step seen by
the next call without recompiling, and the nn.Module API of the jitted module."""

from __future__ import annotations

import copy

import pytest
import torch

import thunder
from models import GPT, MLP, GPTConfig, Llama, LlamaConfig, SmallCNN

B, T = 2, 8


def _gpt_inputs(config, with_targets):
    idx = torch.randint(0, config.vocab_size, (B, T))
    if not with_targets:
        return (idx,)
    targets = torch.randint(0, config.vocab_size, (B, T))
    targets[0, 0] = -1  # ignored position
    targets[1, -1] = -1
    return (idx, targets)


def make(name, dropout=0.0):
    """(model, example inputs) for a model name."""
    torch.manual_seed(1234)
    if name == "mlp":
        return MLP(16, 32, 8, dropout=dropout), (torch.randn(4, 16),)
    if name == "cnn":
        return SmallCNN(3, 4, 10, image_size=8), (torch.randn(2, 3, 8, 8),)
    if name.startswith("gpt"):
        attention = "manual" if name.endswith("manual") else "sdpa"
        config = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64,
                           dropout=dropout, attention=attention)
        return GPT(config), _gpt_inputs(config, with_targets=name.startswith("gpt_loss"))
    if name.startswith("llama"):
        gqa, rope = ("enable_gqa", "half") if name.endswith("gqa") else ("repeat_interleave", "interleaved")
        config = LlamaConfig(n_layer=2, n_head=4, n_kv_head=2, n_embd=32, intermediate_size=48,
                             block_size=16, vocab_size=64, gqa=gqa, rope=rope)
        inputs = _gpt_inputs(config, with_targets=name.startswith("llama_loss"))
        return Llama(config), inputs
    raise ValueError(name)


MODELS = ["mlp", "cnn", "gpt", "gpt_manual", "gpt_loss", "gpt_loss_manual", "llama", "llama_gqa",
          "llama_loss", "llama_loss_gqa"]
DROPOUT_MODELS = ["mlp", "gpt", "gpt_manual", "gpt_loss", "gpt_loss_manual"]


def _pair(name, dropout=0.0):
    """An eager model, an independent deep copy of it (same weights) jitted, and the inputs."""
    model, inputs = make(name, dropout)
    eager = copy.deepcopy(model)
    return eager, thunder.jit(model), model, inputs


def _loss_of(out):
    if isinstance(out, tuple):
        return out[1]
    return out.float().pow(2).mean()


@pytest.mark.parametrize("name", MODELS)
def test_forward_eval(name):
    eager, jm, _, inputs = _pair(name, dropout=0.1)
    eager.eval()
    jm.eval()
    with torch.no_grad():
        expected = eager(*inputs)
    with torch.no_grad():
        actual = jm(*inputs)
    torch.testing.assert_close(actual, expected)
    # Grad mode on: same values again (a new cache entry).
    torch.testing.assert_close(jm(*inputs), eager(*inputs))
    assert thunder.cache_misses(jm) == 2
    assert thunder.cache_hits(jm) == 0
    torch.testing.assert_close(jm(*inputs), expected)
    assert thunder.cache_hits(jm) == 1


@pytest.mark.parametrize("name", MODELS)
def test_forward_train_no_dropout(name):
    eager, jm, _, inputs = _pair(name, dropout=0.0)
    eager.train()
    jm.train()
    torch.testing.assert_close(jm(*inputs), eager(*inputs))


@pytest.mark.parametrize("name", DROPOUT_MODELS)
def test_forward_train_dropout_same_seed(name):
    eager, jm, _, inputs = _pair(name, dropout=0.5)
    eager.train()
    jm.train()
    for seed in (0, 1):  # the first call compiles, the second reuses the program
        torch.manual_seed(seed)
        expected = eager(*inputs)
        torch.manual_seed(seed)
        actual = jm(*inputs)
        torch.testing.assert_close(actual, expected)
    assert thunder.cache_misses(jm) == 1
    assert thunder.cache_hits(jm) == 1
    # Dropout is really applied: two draws differ.
    a = jm(*inputs)
    b = jm(*inputs)
    a = a[0] if isinstance(a, tuple) else a
    b = b[0] if isinstance(b, tuple) else b
    assert not torch.equal(a, b)


def test_cnn_train_updates_batchnorm_running_stats():
    eager, jm, model, (x,) = _pair("cnn")
    eager.train()
    jm.train()
    for _ in range(2):
        torch.testing.assert_close(jm(x), eager(x))
    for (n1, b1), (n2, b2) in zip(model.named_buffers(), eager.named_buffers()):
        assert n1 == n2
        torch.testing.assert_close(b1, b2, msg=f"buffer {n1} differs after train-mode calls")
    assert int(model.bn1.num_batches_tracked) == 2
    # Eval mode uses the running statistics.
    eager.eval()
    jm.eval()
    torch.testing.assert_close(jm(x), eager(x))


def test_gpt_loss_path_values():
    eager, jm, _, (idx, targets) = _pair("gpt_loss")
    logits, loss = jm(idx, targets)
    elogits, eloss = eager(idx, targets)
    torch.testing.assert_close(logits, elogits)
    torch.testing.assert_close(loss, eloss)
    assert loss.shape == ()
    # Without targets the module returns the logits only: a different structure, a new entry.
    torch.testing.assert_close(jm(idx), eager(idx))
    assert thunder.cache_misses(jm) == 2


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", MODELS)
def test_backward_matches_eager(name):
    eager, jm, model, inputs = _pair(name, dropout=0.0)
    eager.train()
    jm.train()
    out = jm(*inputs)
    _loss_of(out).backward()
    _loss_of(eager(*inputs)).backward()
    jg, eg = _grads(model), _grads(eager)
    assert jg.keys() == eg.keys()
    for n in eg:
        assert eg[n] is not None
        assert jg[n] is not None, f"parameter {n} got no gradient through the jitted module"
        torch.testing.assert_close(jg[n], eg[n], msg=lambda m, n=n: f"grad of {n}: {m}")


@pytest.mark.parametrize("name", ["mlp", "gpt_loss"])
def test_backward_with_dropout_same_seed(name):
    eager, jm, model, inputs = _pair(name, dropout=0.3)
    eager.train()
    jm.train()
    torch.manual_seed(7)
    _loss_of(jm(*inputs)).backward()
    torch.manual_seed(7)
    _loss_of(eager(*inputs)).backward()
    jg, eg = _grads(model), _grads(eager)
    for n in eg:
        torch.testing.assert_close(jg[n], eg[n], msg=lambda m, n=n: f"grad of {n}: {m}")


def test_backward_input_grad():
    eager, jm, _, (x,) = _pair("mlp")
    xj = x.clone().requires_grad_(True)
    xe = x.clone().requires_grad_(True)
    jm(xj).sum().backward()
    eager(xe).sum().backward()
    torch.testing.assert_close(xj.grad, xe.grad)


@pytest.mark.parametrize("name", ["mlp", "cnn", "gpt_loss", "llama_loss"])
def test_sgd_steps_without_recompiling(name):
    eager, jm, model, inputs = _pair(name)
    eager.train()
    jm.train()
    opt_j = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_e = torch.optim.SGD(eager.parameters(), lr=0.1, momentum=0.9)
    losses_j, losses_e = [], []
    for _ in range(3):
        for m, opt, losses in ((jm, opt_j, losses_j), (eager, opt_e, losses_e)):
            opt.zero_grad()
            loss = _loss_of(m(*inputs))
            loss.backward()
            opt.step()
            losses.append(loss.detach())
    torch.testing.assert_close(torch.stack(losses_j), torch.stack(losses_e))
    assert not torch.equal(losses_j[0], losses_j[-1]), "the optimizer steps had no effect"
    for (n, p), (_, q) in zip(model.named_parameters(), eager.named_parameters()):
        torch.testing.assert_close(p, q, msg=lambda m, n=n: f"parameter {n}: {m}")
    assert thunder.cache_misses(jm) == 1
    assert thunder.cache_hits(jm) == 2


def test_parameter_updated_in_place_without_grad_is_seen():
    model, (x,) = make("mlp")
    jm = thunder.jit(model)
    before = jm(x)
    with torch.no_grad():
        model.net[0].weight.mul_(2.0)
        model.net[-1].bias.add_(1.0)
    after = jm(x)
    torch.testing.assert_close(after, model(x))
    assert not torch.allclose(before, after)
    assert thunder.cache_misses(jm) == 1


def test_module_api_parameters_and_state_dict():
    model, _ = make("gpt")
    jm = thunder.jit(model)
    assert [id(p) for p in jm.parameters()] == [id(p) for p in model.parameters()]
    assert [n for n, _ in jm.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert all(p is q for (_, p), (_, q) in zip(jm.named_parameters(), model.named_parameters()))
    assert [n for n, _ in jm.named_buffers()] == [n for n, _ in model.named_buffers()]
    sd, esd = jm.state_dict(), model.state_dict()
    assert list(sd) == list(esd)
    for k in esd:
        assert sd[k] is esd[k] or torch.equal(sd[k], esd[k])
    # Tied weights stay tied and appear once among the parameters.
    assert model.transformer.wte.weight is model.lm_head.weight
    assert sum(1 for _ in jm.parameters()) == sum(1 for _ in model.parameters())
    # load_state_dict through the jitted module changes the original (and what the jitted module
    # computes, without recompiling).
    idx = torch.randint(0, 64, (B, T))
    first = jm(idx)
    new_sd = {k: v + 0.01 if v.is_floating_point() else v for k, v in esd.items()}
    jm.load_state_dict(new_sd)
    torch.testing.assert_close(model.transformer.ln_f.bias, new_sd["transformer.ln_f.bias"])
    second = jm(idx)
    torch.testing.assert_close(second, model(idx))
    assert not torch.allclose(first, second)
    assert thunder.cache_misses(jm) == 1
    # Attribute access falls through to the original module.
    assert jm.config is model.config
    assert jm.transformer is model.transformer


def test_module_train_eval_switch_recompiles_once_and_follows_mode():
    eager, jm, model, (x,) = _pair("mlp", dropout=0.5)
    assert jm.training and model.training
    jm.eval()
    assert not jm.training and not model.training
    assert all(not m.training for m in model.modules())
    out_eval = jm(x)
    torch.testing.assert_close(out_eval, eager.eval()(x))
    torch.testing.assert_close(jm(x), out_eval)  # deterministic in eval mode
    assert thunder.cache_misses(jm) == 1
    jm.train()
    assert model.training and all(m.training for m in model.modules())
    torch.manual_seed(3)
    out_train = jm(x)
    eager.train()
    torch.manual_seed(3)
    torch.testing.assert_close(out_train, eager(x))
    assert not torch.allclose(out_train, out_eval)
    assert thunder.cache_misses(jm) == 2
    # Switching back reuses the eval entry: no further compilation.
    jm.eval()
    torch.testing.assert_close(jm(x), out_eval)
    jm.train()
    jm(x)
    assert thunder.cache_misses(jm) == 2
    # Changing the flag on the original module is seen as well.
    model.eval()
    torch.testing.assert_close(jm(x), out_eval)
    assert thunder.cache_misses(jm) == 2


def test_module_to_float64():
    eager, jm, model, (x,) = _pair("mlp")
    out32 = jm(x)
    assert out32.dtype == torch.float32
    ret = jm.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert all(p.dtype == torch.float64 for p in jm.parameters())
    eager.to(torch.float64)
    x64 = x.double()
    target = ret if isinstance(ret, torch.nn.Module) else jm
    out64 = target(x64)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, eager(x64))
    torch.testing.assert_close(jm(x64), eager(x64))
    assert thunder.cache_misses(jm) == 2


def test_gpt_module_to_float64():
    eager, jm, model, (idx, targets) = _pair("gpt_loss")
    jm.to(torch.float64)
    eager.to(torch.float64)
    logits, loss = jm(idx, targets)
    assert logits.dtype == torch.float64 and loss.dtype == torch.float64
    elogits, eloss = eager(idx, targets)
    torch.testing.assert_close(logits, elogits)
    torch.testing.assert_close(loss, eloss)


def test_jit_of_jitted_module_uses_original():
    model, (x,) = make("mlp")
    jm = thunder.jit(model)
    jjm = thunder.jit(jm)
    torch.testing.assert_close(jjm(x), model(x))
    assert list(jjm.parameters())[0] is list(model.parameters())[0]


def test_submodule_jitted_inside_eager_model():
    model, (idx,) = make("gpt")
    eager = copy.deepcopy(model)
    model.transformer.h[0] = thunder.jit(model.transformer.h[0])
    torch.testing.assert_close(model(idx), eager(idx))


class _RootParams(torch.nn.Module):
    """A module with its own parameter, buffer and a `self.training` check at the top level."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.randn(4))
        self.register_buffer("shift", torch.randn(4))
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x * self.scale + self.shift)
        return y * 2 if self.training else y


def test_root_module_train_eval_and_to():
    torch.manual_seed(0)
    model = _RootParams()
    eager = copy.deepcopy(model)
    jm = thunder.jit(model)
    x = torch.randn(2, 4)
    torch.testing.assert_close(jm(x), eager(x))
    jm.eval()
    eager.eval()
    assert model.training is False, "jm.eval() did not reach the original root module"
    torch.testing.assert_close(jm(x), eager(x))
    jm.to(torch.float64)
    eager.to(torch.float64)
    assert model.scale.dtype == torch.float64, "jm.to() did not convert the root's own parameter"
    assert model.shift.dtype == torch.float64, "jm.to() did not convert the root's own buffer"
    torch.testing.assert_close(jm(x.double()), eager(x.double()))
