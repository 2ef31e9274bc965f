from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.nn import ConvTranspose2d, bilinear_upsampling
from dlcamp.ops import bilinear_kernel, bilinear_weight, conv_transpose2d

METHODS = ["zero_insertion", "gradient"]
KERNELS = [(3, 2), (1, 4), (3, 3)]  # non-square, a 1-wide one, square


def _cases(stride: int):
    """(padding, output_padding, groups, dilation, kernel, with_bias) that torch accepts at this stride."""
    for padding, groups, dilation, kernel, with_bias in itertools.product(
        range(3), (1, 2), (1, 2), KERNELS, (False, True)
    ):
        for output_padding in range(max(stride, dilation)):
            yield padding, output_padding, groups, dilation, kernel, with_bias


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], seed: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, inputs, grad_outputs=seed)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("method", METHODS)
def test_written_out_transposed_conv_matches_torch_values_and_gradients(method, stride):
    gen = torch.Generator().manual_seed(stride)
    checked = 0
    for padding, output_padding, groups, dilation, kernel, with_bias in _cases(stride):
        in_channels, out_per_group = 2 * groups, 3
        x = torch.randn(2, in_channels, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
        weight = torch.randn(in_channels, out_per_group, *kernel, dtype=torch.float64, generator=gen)
        weight.requires_grad_()
        bias = torch.randn(out_per_group * groups, dtype=torch.float64, generator=gen) if with_bias else None
        if bias is not None:
            bias.requires_grad_()
        args = (stride, padding, output_padding, groups, dilation)
        case = f"stride={stride} padding={padding} output_padding={output_padding} groups={groups} dilation={dilation} kernel={kernel}"
        try:
            expected = F.conv_transpose2d(x, weight, bias, *args)
        except RuntimeError:  # the output would be empty: padding larger than what the kernel adds
            with pytest.raises(ValueError, match="too large"):
                conv_transpose2d(x, weight, bias, *args, method=method)
            continue
        ours = conv_transpose2d(x, weight, bias, *args, method=method)
        assert ours.shape == expected.shape, case
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-10, msg=case)
        inputs = [x, weight] + ([bias] if bias is not None else [])
        seed = torch.randn(expected.shape, dtype=torch.float64, generator=gen)
        for mine, theirs in zip(_grads(ours, inputs, seed), _grads(expected, inputs, seed)):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-10, msg=case)
        checked += 1
    assert checked > 50  # the grid really ran


@pytest.mark.parametrize("method", METHODS)
def test_written_out_transposed_conv_has_torchs_second_derivatives(method):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    weight = torch.randn(4, 3, 3, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    args = (2, 1, 1, 2, 1)  # stride, padding, output_padding, groups, dilation

    def second(conv) -> tuple[torch.Tensor, ...]:
        gx, gw = torch.autograd.grad(conv(x, weight, None, *args).pow(2).sum(), (x, weight), create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum() + gw.pow(3).sum(), (x, weight))  # values ~1e5

    expected = second(F.conv_transpose2d)
    ours = second(lambda *a: conv_transpose2d(*a, method=method))
    for mine, theirs in zip(ours, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-10)


def test_gradient_method_works_without_autograd():
    x, weight = torch.randn(2, 3, 5, 4), torch.randn(3, 2, 3, 3)
    expected = F.conv_transpose2d(x, weight, stride=2, padding=1, output_padding=1)
    with torch.no_grad():
        under_no_grad = conv_transpose2d(
            x, weight.requires_grad_(), stride=2, padding=1, output_padding=1, method="gradient"
        )
    with torch.inference_mode():
        under_inference = conv_transpose2d(x, weight, stride=2, padding=1, output_padding=1, method="gradient")
    for out in (under_no_grad, under_inference):
        assert not out.requires_grad
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("method", METHODS)
def test_unbatched_input_gives_unbatched_output(method):
    x, weight = torch.randn(3, 5, 4), torch.randn(3, 2, 3, 3)
    torch.testing.assert_close(
        conv_transpose2d(x, weight, stride=2, method=method), F.conv_transpose2d(x, weight, stride=2)
    )


def test_transposed_conv_is_the_adjoint_of_conv_not_its_inverse():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, generator=gen)  # conv: 2 -> 3 channels
    z = torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=gen)
    y = torch.randn(1, 3, 4, 4, dtype=torch.float64, generator=gen)
    conv = F.conv2d(z, weight, stride=2, padding=1)  # (1, 3, 4, 4)
    back = conv_transpose2d(y, weight, stride=2, padding=1, output_padding=1)  # (1, 2, 8, 8)
    # <W z, y> = <z, W^T y> ...
    torch.testing.assert_close((conv * y).sum(), (z * back).sum(), rtol=0, atol=1e-10)
    # ... but W^T W z is not z: the shape comes back, the values do not.
    round_trip = conv_transpose2d(conv, weight, stride=2, padding=1, output_padding=1)
    assert round_trip.shape == z.shape and not torch.allclose(round_trip, z, atol=0.1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x, w: conv_transpose2d(x, w, stride=2, output_padding=2), "output_padding"),
        (lambda x, w: conv_transpose2d(x, w, stride=1, dilation=2, output_padding=(0, 2)), "output_padding"),
        (lambda x, w: conv_transpose2d(x, w, groups=4), "divisible by groups"),
        (lambda x, w: conv_transpose2d(x, w, padding=5), "too large"),
        (lambda x, w: conv_transpose2d(x, w, method="fft"), "method"),
        (lambda x, w: conv_transpose2d(x, w[:4]), "input channels"),
        (lambda x, w: conv_transpose2d(x, w, stride=(2, 2, 2)), "pair"),
        (lambda x, w: ConvTranspose2d(6, 4, 3, groups=4), "divisible by groups"),
        (lambda x, w: ConvTranspose2d(6, 4, 3, groups=3), "divisible by groups"),
        (lambda x, w: ConvTranspose2d(6, 4, 3, stride=2, output_padding=2), "output_padding"),
        (lambda x, w: ConvTranspose2d(6, 4, 3, method="fft"), "method"),
        (lambda x, w: bilinear_kernel(0), "factor"),
        (lambda x, w: bilinear_weight(0, 2), "channels"),
    ],
)
def test_bad_arguments_raise_one_clear_value_error(call, message):
    x, weight = torch.randn(1, 6, 3, 3), torch.randn(6, 2, 3, 3)
    with pytest.raises(ValueError, match=message) as info:
        call(x, weight)
    assert "\n" not in str(info.value)


def _module_pair(method: str, **kwargs) -> tuple[ConvTranspose2d, nn.ConvTranspose2d]:
    torch.manual_seed(0)
    theirs = nn.ConvTranspose2d(4, 6, (3, 2), **kwargs).double()
    ours = ConvTranspose2d(4, 6, (3, 2), method=method, **kwargs).double()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


MODULE_ARGS = [
    {},
    {"stride": 2, "padding": 1, "output_padding": 1},
    {"stride": (3, 2), "padding": (0, 1), "output_padding": (2, 0), "groups": 2, "dilation": (1, 2), "bias": False},
]


@pytest.mark.parametrize("kwargs", MODULE_ARGS)
@pytest.mark.parametrize("method", ["native", *METHODS])
def test_module_matches_torch_with_the_same_state_dict(method, kwargs):
    ours, theirs = _module_pair(method, **kwargs)
    for name in (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "output_padding",
        "groups",
        "dilation",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name
    x = torch.randn(2, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    out, expected = ours(x), theirs(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    seed = torch.randn_like(out)
    mine = torch.autograd.grad(out, [x, *ours.parameters()], grad_outputs=seed)
    reference = torch.autograd.grad(expected, [x, *theirs.parameters()], grad_outputs=seed)
    for a, b in zip(mine, reference):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    theirs.load_state_dict(ours.state_dict(), strict=True)  # and back


def test_module_forward_shape_follows_the_output_size_formula():
    layer = ConvTranspose2d(3, 5, (4, 3), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2))
    out = layer(torch.randn(2, 3, 7, 6))
    # (H - 1)s - 2p + d(k - 1) + op + 1 per axis
    assert out.shape == (2, 5, 6 * 2 - 2 + 3 + 1 + 1, 5 * 3 - 0 + 2 * 2 + 2 + 1)


def test_module_default_init_matches_torch_and_is_a_leaf():
    torch.manual_seed(3)
    theirs = nn.ConvTranspose2d(4, 6, 3, groups=2)
    torch.manual_seed(3)
    ours = ConvTranspose2d(4, 6, 3, groups=2)
    assert list(ours.children()) == []
    for (name, mine), (their_name, reference) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == their_name and mine.shape == reference.shape
        torch.testing.assert_close(mine, reference)
    assert "stride=(1, 1)" in repr(ours) and "groups=2" in repr(ours)


def test_bilinear_kernel_is_fcns_filter():
    # f = 2: k = 4, centre 1.5, taps 1 - |t - 1.5|/2; f = 3: k = 5, centre 2, taps 1 - |t - 2|/3.
    torch.testing.assert_close(
        bilinear_kernel(2)[0] / bilinear_kernel(2)[0].max(), torch.tensor([0.25, 0.75, 0.75, 0.25]) / 0.75
    )
    torch.testing.assert_close(bilinear_kernel(2), torch.outer(*[torch.tensor([0.25, 0.75, 0.75, 0.25])] * 2))
    torch.testing.assert_close(bilinear_kernel(3)[2], torch.tensor([1 / 3, 2 / 3, 1, 2 / 3, 1 / 3]))
    weight = bilinear_weight(3, 4)
    assert weight.shape == (3, 3, 8, 8)
    assert weight[0, 1].abs().sum() == 0 and torch.equal(weight[2, 2], bilinear_kernel(4))


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 8, 16])
def test_bilinear_upsampling_equals_interpolate_away_from_the_border(factor):
    gen = torch.Generator().manual_seed(factor)
    x = torch.randn(2, 3, 5, 4, generator=gen)
    layer = bilinear_upsampling(3, factor)
    with torch.no_grad():
        out = layer(x)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert out.shape == expected.shape == (2, 3, 5 * factor, 4 * factor)
    border = factor // 2
    inner = (..., slice(border, -border), slice(border, -border))
    torch.testing.assert_close(out[inner], expected[inner], rtol=0, atol=1e-5)
    # the border is where they differ: interpolate clamps to the edge, the conv pads with zeros
    assert not torch.allclose(out[..., 0, :], expected[..., 0, :], atol=1e-3)


def test_bilinear_upsampling_does_not_mix_channels_and_can_be_frozen():
    layer = bilinear_upsampling(4, 2, trainable=False, bias=True)
    assert not any(p.requires_grad for p in layer.parameters())
    assert torch.equal(layer.bias, torch.zeros(4))
    x = torch.zeros(1, 4, 3, 3)
    x[0, 1] = torch.randn(3, 3)
    out = layer(x)
    assert out[0, 1].abs().sum() > 0 and out[0, [0, 2, 3]].abs().sum() == 0
    assert all(p.requires_grad for p in bilinear_upsampling(4, 2).parameters())


def test_bilinear_upsampling_with_other_padding_is_the_same_map_with_a_margin():
    x = torch.randn(1, 2, 4, 5)
    factor = 4
    centred = bilinear_upsampling(2, factor)(x)
    unpadded = bilinear_upsampling(2, factor, padding=0)(x)
    margin = factor // 2
    assert unpadded.shape[-2:] == (4 * factor + 2 * margin, 5 * factor + 2 * margin)
    torch.testing.assert_close(unpadded[..., margin:-margin, margin:-margin], centred)
