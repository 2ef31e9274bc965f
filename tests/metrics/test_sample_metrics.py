"""Sample metrics against torchmetrics and prdc, closed forms and constructed answers; the shipped feature net."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn as nn

from dlcamp.bench.samples import digits_test_accuracy
from dlcamp.errors import UsageError
from dlcamp.metrics import features as digit_net
from dlcamp.metrics.samples import (
    fid,
    frechet_distance,
    gaussian_stats,
    kid,
    mode_coverage,
    precision_recall,
    sharpness,
)


class _Given(nn.Module):
    """A torchmetrics feature extractor whose 'images' are already the feature vectors [N, D]."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # torchmetrics reads it instead of probing with a dummy image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _two_feature_sets(n_a: int = 300, n_b: int = 250, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n_a, dim, generator=g, dtype=torch.float64)
    mixing = torch.eye(dim, dtype=torch.float64) + 0.3 * torch.randn(dim, dim, generator=g, dtype=torch.float64)
    b = torch.randn(n_b, dim, generator=g, dtype=torch.float64) @ mixing + 0.5
    return a, b


# -- FID ----------------------------------------------------------------------------------


def test_fid_matches_torchmetrics_on_random_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = _two_feature_sets()
    reference = FrechetInceptionDistance(feature=_Given(a.shape[1]))
    reference.update(a, real=True)
    reference.update(b, real=False)
    assert fid(a, b) == pytest.approx(float(reference.compute()), rel=1e-4)


def test_fid_in_digit_features_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    from dlcamp.data.digits import digits_arrays

    images, _, split = digits_arrays(8)
    real = torch.from_numpy(images[split["test"]]).view(-1, 1, 8, 8)
    noisy = (torch.from_numpy(images[split["train"]]).view(-1, 1, 8, 8) + 0.2 * torch.rand(1257, 1, 8, 8)).clamp(0, 1)
    # The net's `features` (a Sequential without num_features): torchmetrics probes it with a (1, 1, 8, 8) image.
    reference = FrechetInceptionDistance(
        feature=digit_net.load_digit_features().features, normalize=True, input_img_size=(1, 8, 8)
    )
    reference.update(real, real=True)
    reference.update(noisy, real=False)
    ours = fid(digit_net.digit_embeddings(real), digit_net.digit_embeddings(noisy))
    assert ours == pytest.approx(float(reference.compute()), rel=1e-4)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    s1, s2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = (mu1 - mu2).square().sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum()  # 7.25 + 4 + 1 + 0
    assert frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(float(expected), rel=1e-12)


def test_frechet_distance_of_scaled_full_covariance():
    # S2 = c S1 with S1 full: Tr(S1 + c S1 - 2 sqrt(c) S1) = (1 - sqrt(c))^2 Tr(S1).
    g = torch.Generator().manual_seed(1)
    root = torch.randn(5, 5, generator=g, dtype=torch.float64)
    s1 = root @ root.T
    mu = torch.zeros(5, dtype=torch.float64)
    assert frechet_distance(mu, s1, mu, 4 * s1) == pytest.approx(float(s1.trace()), rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero_even_with_singular_covariance():
    a = torch.randn(10, 32, generator=torch.Generator().manual_seed(2))  # rank 9 covariance in 32-d
    assert abs(fid(a, a)) < 1e-6


def test_gaussian_stats_match_torch_cov():
    a, _ = _two_feature_sets()
    mu, sigma = gaussian_stats(a)
    torch.testing.assert_close(mu, a.mean(0))
    torch.testing.assert_close(sigma, torch.cov(a.T))  # torch.cov: unbiased (N - 1)


# -- KID ----------------------------------------------------------------------------------


def _torchmetrics_kid(a: torch.Tensor, b: torch.Tensor, **kwargs) -> tuple[float, float]:
    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        reference = KernelInceptionDistance(feature=_Given(a.shape[1]), **kwargs)
    reference.update(a, real=True)
    reference.update(b, real=False)
    mean, std = reference.compute()
    return float(mean), float(std)


def test_kid_matches_torchmetrics_on_all_samples():
    a, b = _two_feature_sets(200, 200)
    ours = kid(a, b, subsets=1, subset_size=200)
    reference = _torchmetrics_kid(a, b, subsets=1, subset_size=200)
    assert ours[0] == pytest.approx(reference[0], rel=1e-6)
    assert ours[1] == 0.0 == reference[1]


def test_kid_matches_torchmetrics_on_the_same_random_subsets():
    a, b = _two_feature_sets()
    ours = kid(a, b, subsets=5, subset_size=50, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(3)  # torchmetrics draws from the global generator, real set first, as kid does
    reference = _torchmetrics_kid(a, b, subsets=5, subset_size=50)
    assert ours == pytest.approx(reference, rel=1e-6)


def test_kid_of_one_distribution_is_near_zero():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    mean, std = kid(a, b, subsets=20, subset_size=100, generator=g)
    assert abs(mean) < 3 * std + 1e-3


# -- precision and recall -----------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_match_prdc(k):
    prdc = pytest.importorskip("prdc")
    g = torch.Generator().manual_seed(5)
    real = torch.randn(200, 8, generator=g, dtype=torch.float64)
    fake = 0.8 * torch.randn(150, 8, generator=g, dtype=torch.float64) + 0.5
    expected = prdc.compute_prdc(real_features=real.numpy(), fake_features=fake.numpy(), nearest_k=k)
    precision, recall = precision_recall(real, fake, k=k)
    assert 0 < precision < 1 and 0 < recall < 1  # the sets overlap partly: the comparison is not vacuous
    assert precision == pytest.approx(float(expected["precision"]), abs=1e-12)
    assert recall == pytest.approx(float(expected["recall"]), abs=1e-12)


def test_precision_recall_of_disjoint_sets_are_zero():
    real = torch.randn(50, 4, generator=torch.Generator().manual_seed(6))
    assert precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)


# -- mode coverage and sharpness ----------------------------------------------------------


def test_mode_coverage_counts_high_quality_samples_per_mode():
    sigma = 0.02
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)  # (8, 2), a ring
    offset = torch.tensor([1.0, 0.0])
    points = torch.cat(
        [
            centers[0].expand(10, 2),  # mode 0: 10 on the centre -> covered
            centers[1].expand(3, 2),  # mode 1: 3 high quality, fewer than min_count -> not covered
            (centers[2] + 2.9 * sigma * offset).expand(5, 2),  # mode 2: 5 within 3 sigma -> covered
            (centers[3] + 3.1 * sigma * offset).expand(5, 2),  # mode 3: 5 beyond 3 sigma -> low quality
            torch.zeros(2, 2),  # the ring's centre: far from every mode -> low quality
        ]
    )
    result = mode_coverage(points, centers, sigma=sigma, min_count=5)
    assert result == {"modes_covered": 2, "high_quality": pytest.approx(18 / 25)}


def test_sharpness_of_a_constant_image_is_zero():
    assert sharpness(torch.full((2, 3, 8, 8), 0.7)) == 0.0


def test_sharpness_of_a_step_edge():
    image = torch.zeros(1, 1, 4, 6)
    image[..., 3:] = 1.0  # columns 0-2 dark, 3-5 bright
    # Interior: rows 1-2, columns 1-4. Central dx = (x[j+1] - x[j-1]) / 2 is 0, 0.5, 0.5, 0
    # in columns 1, 2, 3, 4 and dy = 0, so the mean magnitude over the 8 pixels is 2 * 0.5 * 2 / 8.
    assert sharpness(image) == pytest.approx(0.25)


# -- the shipped feature network ----------------------------------------------------------


def test_shipped_feature_net_is_small():
    model = digit_net.load_digit_features()
    assert digit_net.WEIGHTS.stat().st_size < 1_000_000
    assert sum(p.numel() for p in model.parameters()) < 250_000
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert digit_net.load_digit_features() is model  # cached


@pytest.mark.parametrize("size", [8, 32])
def test_shipped_feature_net_classifies_the_test_digits(size):
    assert digits_test_accuracy(digit_net.load_digit_features(), size) >= 0.97


def test_features_of_8x8_digits_equal_those_of_their_32x32_versions():
    from dlcamp.data.digits import digits_arrays

    small, _, _ = digits_arrays(8)
    large, _, _ = digits_arrays(32)
    f8 = digit_net.digit_embeddings(torch.from_numpy(small[:100]).view(-1, 1, 8, 8))
    f32 = digit_net.digit_embeddings(torch.from_numpy(large[:100]).view(-1, 1, 32, 32))
    assert f8.shape == (100, 64)
    torch.testing.assert_close(f8, f32, atol=1e-5, rtol=1e-5)


def test_missing_weights_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setattr(digit_net, "WEIGHTS", tmp_path / "absent.safetensors")
    digit_net.load_digit_features.cache_clear()
    try:
        with pytest.raises(UsageError, match="absent.safetensors"):
            digit_net.load_digit_features()
    finally:
        digit_net.load_digit_features.cache_clear()
