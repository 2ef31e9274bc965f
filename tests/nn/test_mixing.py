"""Mixup and CutMix: lam follows Beta(alpha, alpha), labels carry exactly the lam used."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlcamp.nn.mixing import CutMix, Mixup, MixupOrCutMix

B = 16  # with labels 0..B-1 every example has its own class, so weights are readable
DRAWS = 4000


def beta_mean_var(alpha: float) -> tuple[float, float]:
    return 0.5, 1.0 / (4.0 * (2.0 * alpha + 1.0))


def assert_beta_moments(lams: torch.Tensor, alpha: float) -> None:
    # Over 4000 draws the sample mean's std is at most sqrt(0.125 / 4000) ~ 0.0056 (alpha=0.5)
    # and the sample variance's std about 0.0014: tolerances of ~4 std.
    mean, var = beta_mean_var(alpha)
    assert abs(lams.mean().item() - mean) < 0.025
    assert abs(lams.var().item() - var) < 0.006
    assert lams.min() >= 0 and lams.max() <= 1


def constant_images(height: int = 12, width: int = 10) -> torch.Tensor:
    """Tensor[B, 3, H, W] where image i is filled with the value i: a pixel names its source."""
    return torch.arange(B, dtype=torch.float64).view(B, 1, 1, 1).expand(B, 3, height, width).clone()


def test_mixup_lam_follows_beta_alpha_alpha_for_the_alpha_given():
    x = torch.randn(B, 4, dtype=torch.float64)
    y = torch.arange(B)
    spreads = {}
    for alpha in (0.5, 2.0):
        torch.manual_seed(0)
        mixup = Mixup(alpha, num_classes=B)
        # The own-class weight of a row with a different partner is lam; rows paired with
        # themselves read 1. With 16 examples at least one row moves (p = 1 - 1/16!).
        lams = torch.tensor([mixup(x, y)[1].diagonal().min().item() for _ in range(DRAWS)])
        assert_beta_moments(lams, alpha)
        spreads[alpha] = lams.var().item()
    assert spreads[0.5] > spreads[2.0] + 0.05  # 0.125 vs 0.05: the two alphas give different lams


def test_mixup_blends_inputs_and_labels_with_the_same_lam():
    x, y = constant_images(), torch.arange(B)  # image i is filled with i, its class is i
    torch.manual_seed(1)
    mixup = Mixup(1.0, num_classes=B)
    for _ in range(10):
        x_mixed, y_soft = mixup(x, y)
        torch.testing.assert_close(y_soft.sum(1), torch.ones(B, dtype=torch.float64), atol=1e-12, rtol=0)
        lam = y_soft.diagonal().min().item()  # own-class weight of any row with another partner
        partners = []
        for i in range(B):
            others = [j for j in range(B) if j != i and y_soft[i, j] > 0]
            partner = others[0] if others else i
            partners.append(partner)
            # y_soft[i] = lam * onehot(y[i]) + (1 - lam) * onehot(y[perm[i]]) ...
            expected = lam * F.one_hot(y[i], B).double() + (1 - lam) * F.one_hot(y[partner], B).double()
            torch.testing.assert_close(y_soft[i], expected, atol=1e-12, rtol=0)
            # ... and the pixels were blended with that same lam and that same partner.
            torch.testing.assert_close(
                x_mixed[i], torch.full_like(x[i], lam * i + (1 - lam) * partner), atol=1e-12, rtol=0
            )
        assert sorted(partners) == list(range(B))  # partners form a permutation of the batch


def test_cutmix_draws_lam_from_beta_alpha_alpha_and_sizes_the_box_from_it():
    x = constant_images(48, 48)[:, :1]  # one channel is enough to see the box
    y = torch.arange(B)
    spreads = {}
    for alpha in (0.5, 2.0):
        torch.manual_seed(2)
        cutmix = CutMix(alpha, num_classes=B)
        drawn, unclipped = [], 0
        sample_lam = cutmix.sample_lam
        cutmix.sample_lam = lambda: drawn.append(sample_lam()) or drawn[-1]  # record what __call__ draws
        for _ in range(150):
            x_mixed, y_soft = cutmix(x, y)
            lam = drawn[-1]
            pasted = (x_mixed != x)[:, 0]  # (B, H, W): the pasted box, in every row that moved
            rows, cols = pasted.any(0).any(1).nonzero(), pasted.any(0).any(0).nonzero()
            if len(rows) == 0:
                continue  # box of zero area (lam ~ 1)
            y1, y2, x1, x2 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            if y1 > 0 and x1 > 0 and y2 < 48 and x2 < 48:  # unclipped: the full box is visible
                side = int(48 * math.sqrt(1 - lam))
                assert (y2 - y1, x2 - x1) == (side, side)
                unclipped += 1
        assert unclipped > 20  # the check above ran on many boxes
        drawn_lams = torch.tensor(drawn)
        assert len(drawn) == 150
        more = torch.tensor([cutmix.sample_lam() for _ in range(DRAWS - len(drawn))])
        lams = torch.cat([drawn_lams, more])
        assert_beta_moments(lams, alpha)
        spreads[alpha] = lams.var().item()
    assert spreads[0.5] > spreads[2.0] + 0.05


def test_cutmix_label_weight_equals_the_fraction_of_pixels_pasted():
    x = constant_images(12, 10)
    y = torch.arange(B)
    torch.manual_seed(3)
    cutmix = CutMix(1.0, num_classes=B)
    for _ in range(40):
        x_mixed, y_soft = cutmix(x, y)
        torch.testing.assert_close(y_soft.sum(1), torch.ones(B, dtype=torch.float64))
        for i in range(B):
            values = x_mixed[i].unique()
            partner = int(values[values != i][0]) if len(values) > 1 else i
            pasted = (x_mixed[i] == partner).double().mean()  # share of the partner's pixels
            expected = (1 - pasted) * F.one_hot(y[i], B) + pasted * F.one_hot(y[partner], B)
            torch.testing.assert_close(y_soft[i], expected.double(), atol=1e-12, rtol=0)


def test_cutmix_box_is_clipped_to_the_image_and_lam_recomputed():
    torch.manual_seed(4)
    cutmix = CutMix(1.0, num_classes=2)
    clipped = 0
    for _ in range(500):
        lam = cutmix.sample_lam()
        y1, y2, x1, x2 = cutmix.sample_box(lam, 20, 30)
        assert 0 <= y1 <= y2 <= 20 and 0 <= x1 <= x2 <= 30
        clipped += (y2 - y1) * (x2 - x1) < int(20 * math.sqrt(1 - lam)) * int(30 * math.sqrt(1 - lam))
    assert clipped > 0  # clipping happens, so recomputing lam matters


@pytest.mark.parametrize("transform", [Mixup, CutMix])
def test_alpha_zero_is_identity_with_one_hot_labels(transform):
    x, y = constant_images(), torch.arange(B)
    x_out, y_soft = transform(0.0, num_classes=B)(x, y)
    assert torch.equal(x_out, x)
    assert torch.equal(y_soft, torch.eye(B, dtype=torch.float64))


@pytest.mark.parametrize("transform", [Mixup, CutMix])
def test_negative_alpha_is_an_error(transform):
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        transform(-0.5, num_classes=10)


def test_mixup_or_cutmix_switches_with_the_given_probability():
    x, y = constant_images(), torch.arange(B)

    def is_cutmix(x_out: torch.Tensor) -> bool:
        # CutMix moves whole pixels, so values stay the integers 0..B-1; Mixup's blends don't.
        return bool((x_out == x_out.round()).all())

    torch.manual_seed(5)
    both = MixupOrCutMix(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=B, switch_prob=0.3)
    share = sum(is_cutmix(both(x, y)[0]) for _ in range(400)) / 400
    assert abs(share - 0.3) < 0.08  # std of the share is 0.023; 0.5 (ignoring it) would fail
    only_cutmix = MixupOrCutMix(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=B)
    assert all(is_cutmix(only_cutmix(x, y)[0]) for _ in range(20))
    only_mixup = MixupOrCutMix(mixup_alpha=1.0, cutmix_alpha=0.0, num_classes=B)
    assert not any(is_cutmix(only_mixup(x, y)[0]) for _ in range(20))
    off = MixupOrCutMix(mixup_alpha=0.0, cutmix_alpha=0.0, num_classes=B)
    x_out, y_soft = off(x, y)
    assert torch.equal(x_out, x) and torch.equal(y_soft, torch.eye(B, dtype=torch.float64))


def test_labels_outside_the_classes_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        Mixup(1.0, num_classes=4)(torch.randn(3, 2), torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="1-D tensor of class indices"):
        CutMix(1.0, num_classes=4)(torch.randn(3, 1, 4, 4), torch.zeros(3, 4))
