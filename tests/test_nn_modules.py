"""torch.nn layers trained through thunder for two steps: outputs, input and parameter gradients and
buffers against eager's (float32, and bfloat16 autocast on the CPU)."""

import pytest
import torch
import torch.nn.functional as F
from nn_training import train_two_steps

import thunder

nn = torch.nn


class _Transformer(nn.Module):
    # A causal target mask built in the function and a source padding mask: torch compares the
    # target mask with the causal mask by value, which thunder answers without the data.
    def __init__(self):
        super().__init__()
        self.m = nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, batch_first=True)

    def forward(self, x):
        mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=x.dtype)
        pad = torch.tensor([[False] * 4 + [True], [False] * 5])
        return self.m(x, x[:, :4].flip(1), tgt_mask=mask, src_key_padding_mask=pad)


class _SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.rnn = nn.GRU(8, 6, batch_first=True)

    def forward(self, x):
        out, weights = self.attn(x, x, x, need_weights=True)
        return self.rnn(out + weights.sum(-1, keepdim=True))[0]


class _Interpolate(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect")

    def forward(self, x):
        y = self.conv(x)
        return (F.interpolate(y, scale_factor=1.5, mode="bicubic", align_corners=True).sum()
                + F.interpolate(y, size=(3, 2), mode="area").sum() + F.grid_sample(y, torch.zeros(2, 3, 3, 2)).sum())


CASES = {
    "transformer": (_Transformer, (2, 5, 8)),
    "self_attention_gru": (_SelfAttention, (2, 5, 8)),
    "encoder_norm_first": (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True,
                                                              activation="gelu"), (2, 5, 8)),
    "batchnorm_conv": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, groups=1, dilation=2), nn.BatchNorm2d(4), nn.ReLU(),
                                             nn.MaxPool2d(2, ceil_mode=True)), (4, 3, 9, 9)),
    "conv_transpose_groupnorm": (lambda: nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=2), nn.GroupNorm(2, 4),
                                                       nn.Upsample(scale_factor=2, mode="bilinear")), (2, 3, 5, 5)),
    "instancenorm_stats": (lambda: nn.InstanceNorm2d(3, track_running_stats=True, affine=True), (2, 3, 4, 4)),
    "interpolate_grid_sample": (_Interpolate, (2, 3, 5, 5)),
    "weight_norm": (lambda: nn.utils.parametrizations.weight_norm(nn.Linear(5, 4)), (3, 5)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_trains_as_in_eager(name):
    train_two_steps(*CASES[name])


@pytest.mark.parametrize("name", ["transformer", "self_attention_gru", "encoder_norm_first"])
def test_layer_trains_as_in_eager_under_bf16_autocast(name):
    train_two_steps(*CASES[name], autocast=True)


def test_transformer_encoder_in_eval_mode_with_a_padding_mask():
    # Its nested-tensor fast path checks the mask's values: thunder says so and names the remedy;
    # with enable_nested_tensor=False the encoder runs its layers on the padded tensor, as eager does.
    from thunder.core.errors import DataDependentError

    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    pad = torch.tensor([[False] * 4 + [True], [False] * 5])
    for nested in (True, False):
        layer = torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
        enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=nested).eval()
        jfn = thunder.jit(lambda x, pad, enc=enc: enc(x, src_key_padding_mask=pad))
        with torch.no_grad():
            if nested:
                with pytest.raises(DataDependentError, match="enable_nested_tensor=False"):
                    jfn(x, pad)
            else:
                torch.testing.assert_close(jfn(x, pad), enc(x, src_key_padding_mask=pad))


def test_rnn_weights_are_not_regrouped_while_tracing():
    # On CUDA an RNN regroups its weights before each call by comparing their addresses, which
    # proxies do not have: while tracing the regrouping is skipped (values are unchanged by it), and
    # torch's own function is back in place afterwards.
    from thunder.core import capture

    original = torch.nn.RNNBase.flatten_parameters
    seen = []

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(4, 3, batch_first=True)

        def forward(self, x):
            seen.append(torch.nn.RNNBase.flatten_parameters)
            self.rnn.flatten_parameters()
            return self.rnn(x)[0]

    m = M()
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(thunder.jit(m)(x), m(x))
    assert seen[0] is capture._flatten_parameters_while_tracing and seen[1] is original
    assert torch.nn.RNNBase.flatten_parameters is original


INPLACE_ACTIVATIONS = {
    "ReLU6": lambda: torch.nn.ReLU6(inplace=True), "SiLU": lambda: torch.nn.SiLU(inplace=True),
    "LeakyReLU": lambda: torch.nn.LeakyReLU(0.1, inplace=True), "Hardswish": lambda: torch.nn.Hardswish(inplace=True),
    "ELU": lambda: torch.nn.ELU(inplace=True), "Hardtanh": lambda: torch.nn.Hardtanh(inplace=True),
    "Mish": lambda: torch.nn.Mish(inplace=True), "Hardsigmoid": lambda: torch.nn.Hardsigmoid(inplace=True),
    "Threshold": lambda: torch.nn.Threshold(0.1, 20.0, inplace=True), "SELU": lambda: torch.nn.SELU(inplace=True),
    "CELU": lambda: torch.nn.CELU(inplace=True),
}


@pytest.mark.parametrize("name", sorted(INPLACE_ACTIVATIONS))
def test_activations_with_inplace_true_train_as_in_eager(name):
    # inplace=True (MobileNet's Hardswish, EfficientNet's SiLU): the activation out of place, its
    # result written into its input, as eager's values and gradients.
    act = INPLACE_ACTIVATIONS[name]
    train_two_steps(lambda: torch.nn.Sequential(torch.nn.Linear(6, 8), act(), torch.nn.Linear(8, 3)), (5, 6))


def test_dropout_with_inplace_true_draws_eager_mask():
    def f(x):
        y = x * 2
        return torch.nn.functional.dropout(y, 0.3, True, True) + y

    x = torch.randn(4, 5, requires_grad=True)
    torch.manual_seed(0)
    want = f(x)
    (gw,) = torch.autograd.grad(want.sum(), x)
    jf = thunder.jit(f)
    torch.manual_seed(0)
    got = jf(x)
    (gg,) = torch.autograd.grad(got.sum(), x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(gg, gw)


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_embedding_with_max_norm_renormalizes_and_trains_as_eager(norm_type):
    # Eager renormalizes the looked-up rows of the weight in place, without history, then looks them
    # up; the weight keeps differentiating as itself (prims.leaf_update).
    import copy

    torch.manual_seed(0)
    ref = torch.nn.Embedding(10, 4, max_norm=1.0, norm_type=norm_type)
    with torch.no_grad():
        ref.weight.mul_(3)
    mod = copy.deepcopy(ref)
    jm = thunder.jit(mod)
    opt_r = torch.optim.SGD(ref.parameters(), lr=0.1)
    opt_j = torch.optim.SGD(mod.parameters(), lr=0.1)
    for idx in (torch.tensor([[1, 2, 2], [3, 9, 1]]), torch.tensor([[0, 1, 5]])):
        want, got = ref(idx), jm(idx)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(mod.weight.detach(), ref.weight.detach())
        cot = torch.randn_like(want)
        want.backward(cot)
        got.backward(cot)
        torch.testing.assert_close(mod.weight.grad, ref.weight.grad)
        opt_r.step()
        opt_j.step()
        opt_r.zero_grad()
        opt_j.zero_grad()
    with torch.no_grad():
        idx = torch.tensor([4, 4, 6])
        torch.testing.assert_close(jm(idx), ref(idx))
        torch.testing.assert_close(mod.weight, ref.weight)


def test_parameters_are_parameters_while_tracing():
    class Scales(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((3,), 2.0))
            self.register_buffer("b", torch.ones(3))

        def forward(self, x):
            # code that treats parameters differently from buffers
            out = x
            for t in (self.w, self.b):
                out = out * t if isinstance(t, torch.nn.Parameter) else out + t
            return out

    m = Scales()
    x = torch.randn(3)
    torch.testing.assert_close(thunder.jit(m)(x), m(x))
