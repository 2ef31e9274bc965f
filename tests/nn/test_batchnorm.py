"""BatchNorm1d/2d against torch.nn.BatchNorm1d/2d: outputs, running stats, gradients, state dicts.

Everything runs in float64 and must agree to 1e-10 (absolute and relative).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcamp.nn import BatchNorm1d, BatchNorm2d

TOL = {"atol": 1e-10, "rtol": 1e-10}
C = 5

# (ours, torch's, input shape): 1d on (B, C) and (B, C, L), 2d on (B, C, H, W).
LAYOUTS = {
    "1d-BC": (BatchNorm1d, nn.BatchNorm1d, (8, C)),
    "1d-BCL": (BatchNorm1d, nn.BatchNorm1d, (4, C, 7)),
    "2d-BCHW": (BatchNorm2d, nn.BatchNorm2d, (3, C, 4, 5)),
}


def make_pair(layout: str, **kwargs):
    ours_cls, ref_cls, shape = LAYOUTS[layout]
    ours = ours_cls(C, **kwargs).double()
    ref = ref_cls(C, **kwargs).double()
    if ours.affine:
        # Non-trivial gamma/beta, so a swapped or missing affine step shows.
        with torch.no_grad():
            ours.weight.copy_(torch.rand(C, dtype=torch.float64) + 0.5)
            ours.bias.copy_(torch.randn(C, dtype=torch.float64))
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours, ref, shape


def assert_same_state(ours: nn.Module, ref: nn.Module) -> None:
    ours_state, ref_state = ours.state_dict(), ref.state_dict()
    assert ours_state.keys() == ref_state.keys()
    for key in ref_state:
        torch.testing.assert_close(ours_state[key], ref_state[key], **TOL, msg=f"state {key!r} differs")


def step_both(ours: nn.Module, ref: nn.Module, shape: tuple[int, ...], scale: float) -> None:
    """One forward/backward on the same input; outputs and all gradients must agree."""
    # Shifted and scaled per step, so the running stats have something to track.
    x = torch.randn(shape, dtype=torch.float64) * scale + scale
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_ref = ours(x_ours), ref(x_ref)
    torch.testing.assert_close(out_ours, out_ref, **TOL)
    upstream = torch.randn_like(out_ref)
    out_ours.backward(upstream)
    out_ref.backward(upstream)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **TOL)
    if ours.affine:
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, **TOL)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, **TOL)
        ours.zero_grad()
        ref.zero_grad()


@pytest.mark.parametrize("track_running_stats", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_batchnorm_matches_torch_in_train_and_eval(layout, momentum, affine, track_running_stats):
    torch.manual_seed(0)
    ours, ref, shape = make_pair(layout, momentum=momentum, affine=affine, track_running_stats=track_running_stats)
    for step in range(4):
        step_both(ours, ref, shape, scale=1.0 + step)
        assert_same_state(ours, ref)  # running_mean, running_var, num_batches_tracked
    if track_running_stats:
        assert int(ours.num_batches_tracked) == 4
    ours.eval()
    ref.eval()
    step_both(ours, ref, shape, scale=2.0)
    assert_same_state(ours, ref)  # eval must not touch the running statistics


def test_running_stats_use_unbiased_variance_and_normalising_uses_biased():
    torch.manual_seed(1)
    bn = BatchNorm1d(3, momentum=1.0, affine=False).double()  # momentum 1: running = last batch
    x = torch.randn(6, 3, dtype=torch.float64)
    y = bn(x)
    torch.testing.assert_close(bn.running_var, x.var(dim=0, unbiased=True), **TOL)
    torch.testing.assert_close(y, (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + bn.eps), **TOL)


def test_cumulative_moving_average_when_momentum_is_none():
    torch.manual_seed(2)
    bn = BatchNorm1d(3, momentum=None).double()
    batches = [torch.randn(10, 3, dtype=torch.float64) + i for i in range(3)]
    for x in batches:
        bn(x)
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in batches]).mean(0), **TOL)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_state_dict_moves_both_ways_with_torch(layout):
    torch.manual_seed(3)
    ours, ref, shape = make_pair(layout)
    for step in range(3):
        ours(torch.randn(shape, dtype=torch.float64) + step)
    # Ours -> torch's, strict: same keys, same shapes.
    ref.load_state_dict(ours.state_dict(), strict=True)
    assert_same_state(ours, ref)
    # Torch's (after its own training) -> ours, strict.
    for _step in range(2):
        ref(torch.randn(shape, dtype=torch.float64) * 3)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert_same_state(ours, ref)
    ours.eval()
    ref.eval()
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), **TOL)


def test_parameters_and_buffers_are_named_like_torch():
    ours, ref = BatchNorm2d(4), nn.BatchNorm2d(4)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert ours.num_batches_tracked.dtype == torch.long
    assert list(BatchNorm1d(4, affine=False, track_running_stats=False).state_dict()) == []


def test_shape_errors_speak_to_the_user():
    with pytest.raises(ValueError, match="2-D .* or 3-D .* got 4-D"):
        BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="4-D .* got 3-D"):
        BatchNorm2d(3)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="expects 3 channels .* got input of shape \\(2, 4\\)"):
        BatchNorm1d(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1d(3)(torch.randn(1, 3))
    BatchNorm1d(3).eval()(torch.randn(1, 3))  # one example is fine in eval


def test_constructor_rejects_bad_values():
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2d(3, momentum=1.5)
