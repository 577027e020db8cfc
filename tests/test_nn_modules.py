"""torch.nn layers trained through thunder for two steps: outputs, input and parameter gradients and
buffers against eager's (float32, and bfloat16 autocast on the CPU)."""

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

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


def _train_two_steps(factory, shape, autocast):
    torch.manual_seed(0)
    ref = factory().train()
    mod = copy.deepcopy(ref)
    jm = thunder.jit(mod)
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    # float32: sums over a batch in another order differ by a few units in the 5th digit.
    tol = {"rtol": 2e-2, "atol": 2e-2} if autocast else {"rtol": 5e-5, "atol": 5e-5}
    for step in range(2):
        x = torch.randn(shape)
        xr, xj = x.clone().requires_grad_(), x.clone().requires_grad_()
        with amp():
            want, got = ref(xr), jm(xj)
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, **tol)
        cot = torch.randn(want.shape, dtype=want.dtype)
        want.backward(cot)
        got.backward(cot)
        torch.testing.assert_close(xj.grad, xr.grad, **tol)
        for (name, pr), pj in zip(ref.named_parameters(), mod.parameters()):
            torch.testing.assert_close(pj.grad, pr.grad, **tol, msg=lambda m, name=name, step=step: f"{name} at step {step}: {m}")
            with torch.no_grad():
                pr -= 0.1 * pr.grad
                pj -= 0.1 * pj.grad
            pr.grad = pj.grad = None
        for (name, br), bj in zip(ref.named_buffers(), mod.buffers()):
            torch.testing.assert_close(bj, br, **tol, msg=lambda m, name=name, step=step: f"buffer {name} at step {step}: {m}")


@pytest.mark.parametrize("name", list(CASES))
def test_layer_trains_as_in_eager(name):
    _train_two_steps(*CASES[name], autocast=False)


@pytest.mark.parametrize("name", ["transformer", "self_attention_gru", "encoder_norm_first"])
def test_layer_trains_as_in_eager_under_bf16_autocast(name):
    _train_two_steps(*CASES[name], autocast=True)
