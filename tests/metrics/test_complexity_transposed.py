"""``dlcamp params`` on transposed convolutions: MACs per input pixel, a jump that divides."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from dlcamp.metrics.complexity import print_table, profile, transposed_span
from dlcamp.nn import ConvTranspose2d

UPSAMPLERS = {
    "torch": lambda: nn.ConvTranspose2d(16, 4, 8, stride=4, padding=2),
    "ours": lambda: ConvTranspose2d(16, 4, 8, stride=4, padding=2),
    "ours_gradient": lambda: ConvTranspose2d(16, 4, 8, stride=4, padding=2, method="gradient"),
}


def _down_up(upsampler: nn.Module) -> nn.Sequential:
    """3x32x32 -> 8x16x16 -> 16x8x8 -> 4x32x32: two stride-2 convs, one stride-4 transposed conv."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        upsampler,
    )


@pytest.mark.parametrize("kind", list(UPSAMPLERS))
def test_transposed_conv_grows_the_output_back_and_returns_the_jump_to_one(kind):
    model = _down_up(UPSAMPLERS[kind]())
    r = profile(model, (3, 32, 32))
    conv1, _, conv2, _, up = r["layers"]
    assert (conv1["output"], conv2["output"], up["output"], r["output"]) == (
        [8, 16, 16],
        [16, 8, 8],
        [4, 32, 32],
        [4, 32, 32],
    )
    assert [row["jump"] for row in (conv1, conv2, up)] == [2, 4, 1] and r["jump"] == 1
    assert isinstance(r["jump"], int)
    # 3x3/2 -> 3; 3x3 at jump 2 -> 7; each output of the k=8, s=4 transposed conv reads ceil(8/4) = 2 cells 4 apart -> 11
    assert (conv1["rf"], conv2["rf"], up["rf"], r["receptive_field"]) == (3, 7, 11, 11)
    # one 8x8 kernel per input pixel and (input, output) channel pair: C_in * C_out/g * k*k * H_in*W_in
    assert up["macs"] == 16 * 4 * 8 * 8 * 8 * 8
    assert up["params"] == 16 * 4 * 8 * 8 + 4
    assert r["total_macs"] == 3 * 9 * 8 * 16 * 16 + 8 * 9 * 16 * 8 * 8 + up["macs"]


@pytest.mark.parametrize(
    "layer, input_shape",
    [
        (nn.ConvTranspose2d(6, 4, (3, 5), stride=(2, 3), padding=1, output_padding=1, groups=2), (6, 5, 7)),
        (ConvTranspose2d(6, 4, (3, 5), stride=(2, 3), padding=1, output_padding=1, groups=2), (6, 5, 7)),
        (nn.ConvTranspose1d(4, 6, 4, stride=2, dilation=2), (4, 9)),
    ],
)
def test_transposed_conv_macs_are_half_of_torchs_flop_count(layer, input_shape):
    with FlopCounterMode(display=False) as counter:
        layer(torch.zeros(1, *input_shape))
    assert profile(layer, input_shape)["total_macs"] == counter.get_total_flops() // 2 > 0


@pytest.mark.parametrize(
    "kernel, stride, dilation", [(3, 2, 1), (4, 2, 1), (5, 3, 1), (1, 2, 1), (3, 2, 2), (2, 2, 3), (3, 3, 2), (4, 1, 2)]
)
def test_transposed_span_is_what_the_gradient_sees(kernel, stride, dilation):
    layer = nn.ConvTranspose1d(1, 1, kernel, stride=stride, dilation=dilation, bias=False)
    nn.init.ones_(layer.weight)
    x = torch.zeros(1, 1, 12, requires_grad=True)
    out = layer(x)
    widest = 0
    for o in range(out.shape[-1]):
        (grad,) = torch.autograd.grad(out[0, 0, o], x, retain_graph=True)
        read = grad[0, 0].nonzero().flatten()
        if len(read):
            widest = max(widest, int(read.max() - read.min()) + 1)
    assert transposed_span(kernel, stride, dilation) == widest


def test_upsampling_past_the_input_gives_a_fractional_jump_printed_as_a_fraction(capsys):
    model = nn.Sequential(nn.ConvTranspose2d(2, 2, 4, stride=4), nn.Conv2d(2, 2, 3, padding=1))
    r = profile(model, (2, 3, 3))
    up, conv = r["layers"]
    assert (up["output"], up["rf"], up["jump"]) == ([2, 12, 12], 1, 0.25)
    assert (conv["rf"], conv["jump"]) == (1.5, 0.25)  # 3 taps a quarter pixel apart: half a pixel each side
    json.dumps(r)  # what `dlcamp params --json` prints
    r["model"] = "upsampler"
    print_table(r)
    table = capsys.readouterr().out
    assert "1/4" in table and "3/2" in table


def test_a_stride_two_conv_after_an_upsampling_gives_an_int_jump_again():
    model = nn.Sequential(nn.ConvTranspose2d(1, 1, 2, stride=2), nn.Conv2d(1, 1, 3, stride=2))
    r = profile(model, (1, 8, 8))
    assert r["jump"] == 1 and isinstance(r["jump"], int) and r["receptive_field"] == 2
