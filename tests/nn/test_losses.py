"""cross_entropy against F.cross_entropy: class indices with label smoothing, and soft targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlcamp.nn.losses import LabelSmoothingCrossEntropy, cross_entropy

TOL = {"atol": 1e-12, "rtol": 1e-12}
B, K = 16, 7


def logits_and_targets(seed: int):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, K, dtype=torch.float64, generator=g) * 3
    labels = torch.randint(0, K, (B,), generator=g)
    soft = torch.softmax(torch.randn(B, K, dtype=torch.float64, generator=g), dim=1)
    return logits, labels, soft


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 1.0])
def test_label_smoothing_matches_torch(eps, reduction):
    logits, labels, _ = logits_and_targets(0)
    ours_in, ref_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = cross_entropy(ours_in, labels, label_smoothing=eps, reduction=reduction)
    ref = F.cross_entropy(ref_in, labels, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(ours, ref, **TOL)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, **TOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_soft_targets_match_torch_probability_targets(eps, reduction):
    logits, _, soft = logits_and_targets(1)
    ours_in, ref_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = cross_entropy(ours_in, soft, label_smoothing=eps, reduction=reduction)
    ref = F.cross_entropy(ref_in, soft, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(ours, ref, **TOL)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, **TOL)


def test_smoothing_equals_cross_entropy_against_the_smoothed_distribution():
    logits, labels, _ = logits_and_targets(2)
    eps = 0.1
    smoothed = (1 - eps) * F.one_hot(labels, K).double() + eps / K  # Szegedy et al. 2016, eq. in sec. 7
    torch.testing.assert_close(
        cross_entropy(logits, labels, label_smoothing=eps), cross_entropy(logits, smoothed), **TOL
    )


def test_extreme_logits_stay_finite():
    logits = torch.tensor([[1000.0, -1000.0, 0.0]], dtype=torch.float64)
    loss = cross_entropy(logits, torch.tensor([1]), label_smoothing=0.1)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([1]), label_smoothing=0.1), **TOL)


def test_module_wraps_the_function():
    logits, labels, _ = logits_and_targets(3)
    loss_fn = LabelSmoothingCrossEntropy(label_smoothing=0.15)
    expected = F.cross_entropy(logits, labels, label_smoothing=0.15)
    torch.testing.assert_close(loss_fn(logits, labels), expected, **TOL)
    assert LabelSmoothingCrossEntropy().label_smoothing == 0.1


def test_bad_inputs_are_rejected_with_a_reason():
    logits, labels, soft = logits_and_targets(4)
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy(logits, labels, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        cross_entropy(logits, labels, reduction="avg")
    with pytest.raises(ValueError, match="integer dtype"):
        cross_entropy(logits, labels.double())
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        cross_entropy(logits, labels + K)
    with pytest.raises(ValueError, match="logits' shape"):
        cross_entropy(logits, soft[:, :-1])
    with pytest.raises(ValueError, match="batch size"):
        cross_entropy(logits, labels[:-1])
