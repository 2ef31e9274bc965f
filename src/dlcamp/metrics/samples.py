"""Measuring generated samples: FID, KID, precision and recall, mode coverage, sharpness.

A generative model is judged by comparing its samples with real data. Images are first
mapped to features of a classifier trained on real images (Inception v3 for natural
images; for the digits, ``dlcamp.metrics.features.load_digit_features``), then the two
sets of feature vectors are compared:

- ``fid``: the Fréchet distance between Gaussians fitted to each set (Heusel et al. 2017).
- ``kid``: the unbiased squared MMD with a cubic polynomial kernel (Bińkowski et al. 2018);
  no Gaussian assumption and an unbiased estimate, so small sample sets compare fairly.
- ``precision_recall``: how much of the fake set lies on the real manifold (fidelity) and
  how much of the real set lies on the fake one (diversity) (Kynkäänniemi et al. 2019).

For toy 2-D mixtures the modes are known: ``mode_coverage`` counts them (VEEGAN's rule).
``sharpness`` is a pixel-space measure: blurry samples (a VAE's mean images) have weaker
gradients than real images and a GAN's samples.

All functions are pure, take torch tensors, compute in float64 and return Python numbers.

Legend: N, M numbers of samples, D feature dimension, K modes.
"""

from __future__ import annotations

import torch

CHUNK = 1024  # rows of a distance matrix computed at once (bounds memory at CHUNK x N floats)


def _features(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"{name} must be a [N, D] matrix of feature vectors, got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance of feature vectors, in float64.

    features (Tensor[N, D]) -> mu (Tensor[D]), sigma (Tensor[D, D]) with
    sigma = sum_i (f_i - mu)(f_i - mu)^T / (N - 1).
    """
    f = _features(features, "features")
    if f.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {f.shape[0]}")
    mu = f.mean(dim=0)  # (D,)
    centred = f - mu  # (N, D)
    sigma = centred.T @ centred / (f.shape[0] - 1)  # (D, D)
    return mu, sigma


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clamped at 0)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    root = eigenvalues.clamp(min=0).sqrt()
    return (eigenvectors * root) @ eigenvectors.T  # V diag(sqrt(w)) V^T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})   (Dowson & Landau 1982), the formula
    of FID (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
    Nash Equilibrium", NeurIPS 2017, arXiv:1706.08500).

    Only the trace of (S1 S2)^{1/2} is needed: the sum of the square roots of the
    eigenvalues of S1 S2. S1 S2 is not symmetric, and a general eigensolver (or scipy's
    ``sqrtm``) can return small imaginary parts and negative eigenvalues from rounding.
    Here S1 S2 is replaced by the similar matrix A = S1^{1/2} S2 S1^{1/2} (same
    eigenvalues), which is symmetric positive semi-definite: A's eigenvalues come from a
    symmetric eigensolver (``eigh``), the tiny negative ones rounding leaves are clamped to
    0, and Tr((S1 S2)^{1/2}) = sum sqrt(eig(A)). Singular covariances (fewer samples than
    dimensions, dead features) need no epsilon on the diagonal. Computed in float64.

    mu1, mu2 (Tensor[D]), sigma1, sigma2 (Tensor[D, D]) -> float.
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"frechet_distance needs mu [D] and sigma [D, D] of one D; got mu1 {tuple(mu1.shape)}, "
            f"sigma1 {tuple(sigma1.shape)}, mu2 {tuple(mu2.shape)}, sigma2 {tuple(sigma2.shape)}"
        )
    root1 = _sqrt_psd(sigma1)
    a = root1 @ sigma2 @ root1  # (D, D), similar to sigma1 @ sigma2
    a = (a + a.T) / 2  # symmetric up to rounding; make it exactly so for eigvalsh
    trace_sqrt = torch.linalg.eigvalsh(a).clamp(min=0).sqrt().sum()
    mean_term = (mu1 - mu2).square().sum()
    return float(mean_term + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt)


def fid(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D] (FID in the
    features of whatever network produced them; Heusel et al. 2017). Lower is closer; 0 for equal stats."""
    mu_a, sigma_a = gaussian_stats(features_a)
    mu_b, sigma_b = gaussian_stats(features_b)
    return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef0: float) -> torch.Tensor:
    return (gamma * (x @ y.T) + coef0) ** degree  # (m, m)


def _unbiased_mmd2(k_aa: torch.Tensor, k_bb: torch.Tensor, k_ab: torch.Tensor) -> torch.Tensor:
    """MMD_u^2 = sum_{i != j} k(a_i, a_j) / m(m-1) + sum_{i != j} k(b_i, b_j) / m(m-1) - 2 sum_{i, j} k(a_i, b_j) / m^2."""
    m = k_aa.shape[0]
    within = (k_aa.sum() - k_aa.diagonal().sum() + k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_ab.mean()


def kid(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Kernel Inception Distance: the unbiased squared MMD between two feature sets, over random subsets.

    Bińkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs", ICLR 2018,
    arXiv:1801.01401. With the polynomial kernel k(x, y) = (gamma x.y + coef0)^degree,
    by default (x.y / D + 1)^3, the unbiased estimator of MMD^2 (``_unbiased_mmd2``: the
    within-set sums leave out the i = j terms) is computed on ``subsets`` pairs of random
    subsets of ``subset_size`` vectors (default min(1000, N, M)), drawn without replacement,
    first from ``features_a`` then from ``features_b``, with ``torch.randperm(...,
    generator=generator)``. Returns the mean over subsets and their population standard
    deviation, as torchmetrics' ``KernelInceptionDistance`` does (same draws in the same
    order, so seeding both alike gives the same numbers). Unbiased, so it can be slightly
    negative when the sets come from one distribution.

    features_a (Tensor[N, D]), features_b (Tensor[M, D]) -> (mean, std).
    """
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kid needs features of one dimension, got {a.shape[1]} and {b.shape[1]}")
    size = min(1000, a.shape[0], b.shape[0]) if subset_size is None else subset_size
    if not 2 <= size <= min(a.shape[0], b.shape[0]):
        raise ValueError(f"kid subset_size must be in [2, min(N, M) = {min(a.shape[0], b.shape[0])}], got {size}")
    if subsets < 1:
        raise ValueError(f"kid needs subsets >= 1, got {subsets}")
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    scores = []
    for _ in range(subsets):
        sub_a = a[torch.randperm(a.shape[0], generator=generator)[:size]]  # (m, D)
        sub_b = b[torch.randperm(b.shape[0], generator=generator)[:size]]  # (m, D)
        k_aa = _polynomial_kernel(sub_a, sub_a, degree, gamma, coef0)
        k_bb = _polynomial_kernel(sub_b, sub_b, degree, gamma, coef0)
        k_ab = _polynomial_kernel(sub_a, sub_b, degree, gamma, coef0)
        scores.append(_unbiased_mmd2(k_aa, k_bb, k_ab))
    values = torch.stack(scores)
    return float(values.mean()), float(values.std(correction=0))


def _kth_neighbour_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour among the others: Tensor[N]."""
    if points.shape[0] <= k:
        raise ValueError(f"a k-th nearest neighbour (k={k}) needs more than {k} points, got {points.shape[0]}")
    radii = []
    for rows in points.split(CHUNK):
        distances = torch.cdist(rows, points)  # (chunk, N); the point itself is at distance 0
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # k+1: the first is the point itself
    return torch.cat(radii)


def _inside_any_ball(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each query lies strictly inside at least one ball (centre_i, radius_i): BoolTensor[Q]."""
    inside = []
    for rows in queries.split(CHUNK):
        distances = torch.cdist(rows, centres)  # (chunk, C)
        inside.append((distances < radii).any(dim=1))
    return torch.cat(inside)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of a generative model (k-NN manifolds of the two feature sets).

    Kynkäänniemi, Karras, Laine, Lehtinen & Aila, "Improved Precision and Recall Metric for
    Assessing Generative Models", NeurIPS 2019, arXiv:1904.06991. Each set's manifold is
    the union of balls around its points, each ball's radius the Euclidean distance to the
    point's k-th nearest neighbour in its own set (the point itself excluded).

    precision = fraction of fake points strictly inside the real manifold (fidelity);
    recall = fraction of real points strictly inside the fake manifold (diversity).

    The same rule, strict inequality included, as ``prdc.compute_prdc`` (Naeem et al.,
    "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020).

    real (Tensor[N, D]), fake (Tensor[M, D]) -> (precision, recall).
    """
    real, fake = _features(real, "real"), _features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"precision_recall needs features of one dimension, got {real.shape[1]} and {fake.shape[1]}")
    if k < 1:
        raise ValueError(f"precision_recall needs k >= 1, got {k}")
    real_radii = _kth_neighbour_radii(real, k)  # (N,)
    fake_radii = _kth_neighbour_radii(fake, k)  # (M,)
    precision = _inside_any_ball(fake, real, real_radii).double().mean()
    recall = _inside_any_ball(real, fake, fake_radii).double().mean()
    return float(precision), float(recall)


def mode_coverage(points: torch.Tensor, centers: torch.Tensor, sigma: float, min_count: int) -> dict[str, float | int]:
    """Modes covered and the fraction of high-quality samples, for a mixture with known modes.

    Srivastava, Valkov, Russell, Gutmann & Sutton, "VEEGAN: Reducing Mode Collapse in GANs
    using Implicit Variational Learning", NeurIPS 2017, arXiv:1705.07761, on the 2-D ring
    and grid of Gaussians (standard deviation ``sigma``). The rule:

    - each sample is assigned to its nearest centre (Euclidean);
    - it is *high quality* if it lies within 3 * sigma of that centre (distance <= 3 sigma);
    - a mode is *covered* if at least ``min_count`` high-quality samples are assigned to it
      (papers choose the threshold for their sample count; it is the caller's here).

    points (Tensor[N, 2]), centers (Tensor[K, 2]) ->
    {"modes_covered": int in [0, K], "high_quality": float in [0, 1]}.
    """
    points, centers = _features(points, "points"), _features(centers, "centers")
    if points.shape[1] != centers.shape[1]:
        raise ValueError(f"points and centers must have one dimension, got {points.shape[1]} and {centers.shape[1]}")
    distances = torch.cdist(points, centers)  # (N, K)
    nearest_distance, nearest = distances.min(dim=1)  # (N,), (N,)
    high_quality = nearest_distance <= 3 * sigma  # (N,)
    counts = torch.bincount(nearest[high_quality], minlength=centers.shape[0])  # (K,)
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "high_quality": float(high_quality.double().mean()),
    }


def sharpness(images: torch.Tensor) -> float:
    """Mean gradient magnitude of images: 0 for a flat image, larger for crisper edges.

    The gradient is taken by central differences on the interior pixels (as ``numpy.gradient``
    away from the border): dx = (x[i, j+1] - x[i, j-1]) / 2, dy = (x[i+1, j] - x[i-1, j]) / 2,
    and the result is the mean of sqrt(dx^2 + dy^2) over images, channels and the
    (H-2) x (W-2) interior. A gradient-based focus measure (Pertuz, Puig & Garcia, "Analysis
    of focus measure operators for shape-from-focus", Pattern Recognition 2013); used here to
    show that a VAE's samples are blurrier than real images and a GAN's. Compare images of
    one size and value range only.

    images (Tensor[N, C, H, W]), H, W >= 3 -> float.
    """
    if images.dim() != 4 or images.shape[-1] < 3 or images.shape[-2] < 3:
        raise ValueError(f"sharpness needs images [N, C, H, W] with H, W >= 3, got shape {tuple(images.shape)}")
    x = images.detach().to(torch.float64)
    dx = (x[..., 1:-1, 2:] - x[..., 1:-1, :-2]) / 2  # (N, C, H-2, W-2)
    dy = (x[..., 2:, 1:-1] - x[..., :-2, 1:-1]) / 2  # (N, C, H-2, W-2)
    return float(torch.sqrt(dx.square() + dy.square()).mean())


__all__ = ["fid", "frechet_distance", "gaussian_stats", "kid", "mode_coverage", "precision_recall", "sharpness"]
