"""Matching and sampling agree with torchvision's rules; hard negative mining keeps the hardest negatives."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler as TorchvisionSampler
from torchvision.models.detection._utils import Matcher as TorchvisionMatcher
from torchvision.models.detection._utils import SSDMatcher

from dlcamp.errors import UsageError
from dlcamp.ops import BalancedPositiveNegativeSampler, Matcher, hard_negative_mining, ssd_match


def quantised_iou(num_gt: int, num_anchors: int, seed: int) -> torch.Tensor:
    """IoUs on a coarse grid, so that ties (between anchors and between ground truths) are common."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 11, (num_gt, num_anchors), generator=g).float() / 10


@pytest.mark.parametrize("low_quality", [False, True])
@pytest.mark.parametrize("thresholds", [(0.7, 0.3), (0.5, 0.5), (0.9, 0.8)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matcher_matches_torchvision(low_quality, thresholds, seed):
    iou = quantised_iou(4, 40, seed) * 0.9  # so that some objects have no anchor above 0.7
    ours = Matcher(*thresholds, allow_low_quality_matches=low_quality)(iou)
    assert torch.equal(ours, TorchvisionMatcher(*thresholds, allow_low_quality_matches=low_quality)(iou))


def test_matcher_codes_and_low_quality_rescue():
    iou = torch.tensor([[0.8, 0.5, 0.1, 0.0], [0.0, 0.0, 0.2, 0.1]])
    assert Matcher(0.7, 0.3)(iou).tolist() == [0, Matcher.BETWEEN_THRESHOLDS, -1, -1]
    # object 1's best anchor (2, IoU 0.2) is rescued even though 0.2 < 0.3
    assert Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou).tolist() == [0, -2, 1, -1]


def test_matcher_without_ground_truth_gives_background():
    assert Matcher(0.7, 0.3, True)(torch.zeros(0, 5)).tolist() == [-1] * 5
    assert ssd_match(torch.zeros(0, 3), 0.5).tolist() == [-1] * 3


def test_matcher_rejects_inverted_thresholds():
    with pytest.raises(UsageError, match="low_threshold"):
        Matcher(0.3, 0.7)


@pytest.mark.parametrize("seed", range(5))
def test_ssd_match_matches_torchvision(seed):
    # Many ties: several objects often share a best anchor, where the higher index must win.
    iou = quantised_iou(6, 12, seed)
    assert torch.equal(ssd_match(iou, 0.5), SSDMatcher(0.5)(iou))


def test_ssd_match_forces_every_object_onto_its_best_anchor():
    iou = torch.tensor([[0.6, 0.2, 0.1], [0.1, 0.3, 0.2]])
    assert ssd_match(iou, 0.5).tolist() == [0, 1, -1]  # object 1 only reaches 0.3, on anchor 1


def test_sampler_draws_the_same_counts_as_torchvision():
    g = torch.Generator().manual_seed(0)
    labels = [torch.randint(-1, 2, (200,), generator=g), torch.tensor([1] * 3 + [0] * 5 + [-1] * 10)]
    ours_pos, ours_neg = BalancedPositiveNegativeSampler(64, 0.25)(labels, generator=torch.Generator().manual_seed(1))
    theirs_pos, theirs_neg = TorchvisionSampler(64, 0.25)(labels)
    for lab, pos, neg, tpos, tneg in zip(labels, ours_pos, ours_neg, theirs_pos, theirs_neg):
        assert pos.dtype == torch.bool and neg.dtype == torch.bool
        assert int(pos.sum()) == int(tpos.sum()) and int(neg.sum()) == int(tneg.sum())
        assert (lab[pos] == 1).all() and (lab[neg] == 0).all()
    assert [int(p.sum()) for p in ours_pos] == [16, 3] and [int(n.sum()) for n in ours_neg] == [48, 5]


def test_sampler_is_random_but_reproducible_with_a_generator():
    labels = [torch.tensor([1] * 50 + [0] * 50)]
    sampler = BalancedPositiveNegativeSampler(10, 0.5)
    first = sampler(labels, generator=torch.Generator().manual_seed(3))
    again = sampler(labels, generator=torch.Generator().manual_seed(3))
    other = sampler(labels, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first[0][0], again[0][0]) and not torch.equal(first[0][0], other[0][0])


def test_hard_negative_mining_keeps_the_hardest_negatives():
    g = torch.Generator().manual_seed(0)
    loss = torch.rand(3, 50, generator=g)
    positive = torch.zeros(3, 50, dtype=torch.bool)
    positive[0, [1, 7]] = True  # 2 positives -> 6 negatives
    positive[1, :10] = True  # 10 positives -> 30 negatives of 40
    keep = hard_negative_mining(loss, positive, 3.0)
    assert (keep & positive).equal(positive)
    negatives = keep & ~positive
    assert negatives.sum(dim=1).tolist() == [6, 30, 0]
    for image in range(2):
        chosen = loss[image][negatives[image]]
        left_out = loss[image][~keep[image]]
        assert chosen.min() > left_out.max()


def test_hard_negative_mining_caps_floors_and_none():
    loss = torch.arange(10.0)[None].repeat(2, 1)
    positive = torch.zeros(2, 10, dtype=torch.bool)
    positive[0, :4] = True  # 4 positives would want 12 negatives; only 6 exist
    keep = hard_negative_mining(loss, positive, 3.0, min_negatives=2)
    assert keep[0].all()
    assert keep[1].tolist() == [False] * 8 + [True] * 2  # no positives: the 2 hardest negatives
    assert hard_negative_mining(loss, positive, None).all()
    assert not hard_negative_mining(loss, positive, 3.0)[1].any()  # the paper's rule: 3 * 0 = 0
