"""Dropout: identity in eval; in training drops a fraction p and scales the rest by 1/(1-p)."""

from __future__ import annotations

import pytest
import torch

from dlcamp.nn import Dropout

N = 1_000_000
# Fraction zeroed on N Bernoulli(p) draws has std sqrt(p(1-p)/N) <= 5e-4; 5e-3 is 10 std.
FRACTION_TOL = 5e-3


def test_eval_mode_is_the_identity():
    x = torch.randn(64, 32)
    drop = Dropout(p=0.5).eval()
    assert torch.equal(drop(x), x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_training_zeroes_a_fraction_p_and_scales_the_rest(p):
    torch.manual_seed(0)
    x = torch.rand(N, dtype=torch.float64) + 0.5  # strictly positive: a zero can only be a drop
    out = Dropout(p=p).train()(x)
    dropped = out == 0
    assert abs(dropped.double().mean().item() - p) < FRACTION_TOL
    torch.testing.assert_close(out[~dropped], x[~dropped] / (1 - p), atol=1e-12, rtol=1e-12)


def test_expected_activation_is_unchanged():
    torch.manual_seed(1)
    x = torch.ones(N)
    # mean of N i.i.d. values 0 or 1/(1-p): std sqrt(p/(1-p)/N) = 1e-3 at p=0.5.
    assert abs(Dropout(p=0.5)(x).mean().item() - 1.0) < 1e-2


def test_gradient_flows_only_through_kept_units_with_the_same_scale():
    torch.manual_seed(2)
    x = torch.rand(1000, requires_grad=True)
    out = Dropout(p=0.3)(x)
    out.sum().backward()
    kept = out.detach() != 0
    torch.testing.assert_close(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.7))
    assert torch.all(x.grad[~kept] == 0)


def test_p_zero_is_identity_and_p_one_is_zeros():
    x = torch.randn(100, 10) + 5
    assert torch.equal(Dropout(p=0.0)(x), x)
    zeros = Dropout(p=1.0)(x)
    assert torch.equal(zeros, torch.zeros_like(x))
    assert not torch.isnan(zeros).any()


def test_inplace_overwrites_its_input():
    torch.manual_seed(3)
    x = torch.rand(1000) + 1
    out = Dropout(p=0.5, inplace=True)(x)
    assert out.data_ptr() == x.data_ptr()
    assert (x == 0).any()


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_outside_unit_interval_is_rejected(p):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Dropout(p=p)
