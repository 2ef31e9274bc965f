"""The likelihood models are exact densities: probabilities sum to one, masks leak nothing,
and the VAE's bounds behave as the theory says."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dlcamp.models import get_model
from dlcamp.models.generative.base import BinaryAutoregressive
from dlcamp.models.generative.vae import kl_to_standard_normal

SHAPE = (1, 3, 4)  # 12 binary pixels: 4,096 images
# Small but deep enough that every part is exercised (stacked mask-B layers, two LSTM layers).
AUTOREGRESSIVE = {
    "bernoulli": {},
    "nade": {"hidden": 7},
    "pixelcnn": {"hidden": 4, "blocks": 2, "head_hidden": 8, "first_kernel": 3},
    "pixelcnn_k7": {"hidden": 4, "blocks": 2, "head_hidden": 8},
    "pixelrnn_row": {"kind": "row", "layers": 2, "hidden": 4, "channels": 5, "head_hidden": 8},
    "pixelrnn_diagonal": {"kind": "diagonal", "layers": 2, "hidden": 4, "channels": 5, "head_hidden": 8},
}


def _build(key: str, shape=SHAPE) -> BinaryAutoregressive:
    torch.manual_seed(0)
    model = get_model(key.split("_")[0], input_shape=shape, **AUTOREGRESSIVE[key]).double()
    # Random, non-trivial biases and weights so that no conditional is accidentally uniform.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def _all_images(shape=SHAPE) -> torch.Tensor:
    d = math.prod(shape)
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64)
    return bits.view(-1, *shape)


@pytest.mark.parametrize("key", sorted(AUTOREGRESSIVE))
def test_probabilities_over_every_image_sum_to_one(key):
    model = _build(key)
    with torch.no_grad():
        log_p = model.log_prob(_all_images())
    assert log_p.shape == (4096,)
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert log_p.max() < 0 and log_p.min() > -60  # a real spread, not a degenerate model


@pytest.mark.parametrize("key", sorted(AUTOREGRESSIVE))
def test_logit_i_has_zero_gradient_wrt_pixels_at_or_after_i(key):
    model = _build(key, (1, 5, 5))
    x = torch.bernoulli(torch.full((1, 1, 5, 5), 0.5, dtype=torch.float64))
    jac = torch.autograd.functional.jacobian(lambda inp: model.logits(inp).flatten(), x).reshape(25, 25)
    future = torch.triu(torch.ones(25, 25, dtype=torch.bool))  # [i, j] with j >= i
    assert torch.count_nonzero(jac[future]) == 0
    if key != "bernoulli":
        # ... and the past does reach the output: the mask is not simply blocking everything
        assert torch.count_nonzero(jac[~future]) > 0


def test_receptive_fields_of_the_two_pixelrnn_layers():
    """The paper's point about context, as gradients at the first pixel of the last row.

    The Diagonal BiLSTM reaches every pixel of the rows above but one: the last pixel of
    the row just above, (4, 5). Its value enters the features only at positions after it,
    i.e. on row 5, where the left-to-right pass at (5, 0) cannot look right and the
    right-to-left pass has been shifted down from row 4; the first layer's kernel is the
    only way in (here 3×3: it reaches column 1). The Row LSTM's triangle misses more of the
    upper right. Nothing in row 5 or beyond is ever seen.
    """
    missed = {}
    for key in ("pixelrnn_diagonal", "pixelrnn_row"):
        torch.manual_seed(0)
        model = get_model("pixelrnn", input_shape=(1, 6, 6), first_kernel=3, **AUTOREGRESSIVE[key]).double()
        x = torch.bernoulli(torch.full((1, 1, 6, 6), 0.5, dtype=torch.float64))
        jac = torch.autograd.functional.jacobian(lambda inp: model.logits(inp)[0, 0, 5, 0], x).reshape(6, 6)
        assert torch.count_nonzero(jac[5:]) == 0
        missed[key] = {(r, c) for r in range(5) for c in range(6) if jac[r, c] == 0}
    assert missed["pixelrnn_diagonal"] == {(4, 5)}
    assert missed["pixelrnn_row"] > missed["pixelrnn_diagonal"] and (3, 5) in missed["pixelrnn_row"]


@pytest.mark.parametrize("key", ["nade", "pixelcnn", "pixelrnn_diagonal", "bernoulli"])
def test_samples_are_binary_and_completion_keeps_the_prefix(key):
    model = _build(key).float()
    torch.manual_seed(1)
    x = model.sample(5)
    assert x.shape == (5, *SHAPE) and torch.all((x == 0) | (x == 1))
    prefix = torch.bernoulli(torch.full((5, *SHAPE), 0.5))
    done = model.sample(5, prefix=prefix, start=6)
    assert torch.equal(done.view(5, -1)[:, :6], prefix.view(5, -1)[:, :6])


def test_sampling_follows_the_model_distribution():
    """Empirical frequencies of 20,000 NADE samples over 2×2 images match p(x) (chi-square-ish bound)."""
    model = _build("nade", (1, 2, 2)).float()
    images = _all_images((1, 2, 2)).float()
    with torch.no_grad():
        p = model.log_prob(images).exp()
    torch.manual_seed(0)
    s = model.sample(20_000).view(20_000, -1)
    codes = (s * torch.tensor([8, 4, 2, 1])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).float() / 20_000
    se = (p * (1 - p) / 20_000).sqrt()
    assert torch.all((freq - p).abs() < 5 * se + 1e-4)


# -- VAE ------------------------------------------------------------------------------------
def _vae(**kw):
    torch.manual_seed(0)
    model = get_model("vae", input_shape=(1, 4, 4), latent_dim=3, hidden=[16], **kw).double()
    return model.eval()


def _binary(n=4, shape=(1, 4, 4)):
    torch.manual_seed(2)
    return torch.bernoulli(torch.full((n, *shape), 0.4, dtype=torch.float64))


def test_iwae_with_one_sample_equals_the_elbo_in_expectation():
    model, x = _vae(), _binary()
    torch.manual_seed(3)
    with torch.no_grad():
        lw = model.log_weights(x, 40_000)  # k=1 bound, 40k independent draws per image
        elbo = torch.stack([model.elbo(x)["elbo"] for _ in range(4_000)])
    se = (lw.std(1) ** 2 / lw.shape[1] + elbo.std(0) ** 2 / elbo.shape[0]).sqrt()
    assert torch.all((lw.mean(1) - elbo.mean(0)).abs() < 4 * se)


def test_iwae_bound_does_not_decrease_with_k():
    model, x = _vae(), _binary()
    torch.manual_seed(4)
    with torch.no_grad():
        bounds = {k: torch.stack([model.iwae(x, k) for _ in range(200)]).mean(0) for k in (1, 5, 50)}
    assert torch.all(bounds[5] > bounds[1]) and torch.all(bounds[50] > bounds[5])


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(5)
    mu, logvar = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(200_000, 3, 4, dtype=torch.float64)
    log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    mc = (log_q - log_p).mean(0)
    se = (log_q - log_p).std(0) / math.sqrt(200_000)
    closed = kl_to_standard_normal(mu, logvar)
    assert torch.all((mc - closed).abs() < 4 * se)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, std), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    torch.testing.assert_close(closed, ref)


def test_elbo_terms_and_gaussian_decoder():
    model, x = _vae(), _binary()
    terms = model.elbo(x)
    torch.testing.assert_close(terms["elbo"], terms["recon"] - terms["kl"])
    assert torch.all(terms["kl"] >= 0) and torch.all(terms["recon"] <= 0)
    g = _vae(decoder="gaussian")
    grey = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    assert torch.isfinite(g.log_prob(grey, k=10)).all()
    assert g.sample(3).shape == (3, 1, 4, 4)
    with pytest.raises(ValueError, match="binary"):
        model.elbo(grey)


def test_conditional_vae_needs_and_uses_the_label():
    torch.manual_seed(0)
    model = get_model("cvae", input_shape=(1, 4, 4), num_classes=3, latent_dim=2, hidden=[8]).double().eval()
    x = _binary()
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="condition"):
        model.log_prob(x)
    torch.manual_seed(1)
    a = model.log_prob(x, y, k=20)
    torch.manual_seed(1)
    b = model.log_prob(x, (y + 1) % 3, k=20)
    assert a.shape == (4,) and not torch.allclose(a, b)
    assert model.sample(4, condition=y).shape == (4, 1, 4, 4)


def test_the_vae_family_is_a_latent_variable_model_and_autoregressive_models_are_not():
    from dlcamp.models.generative.base import DensityModel, LatentVariableModel

    for name in ("vae", "cvae"):
        model = get_model(name, input_shape=SHAPE, latent_dim=2, hidden=[8])
        assert isinstance(model, LatentVariableModel) and isinstance(model, DensityModel)
        x = (torch.rand(3, *SHAPE) > 0.5).float()
        y = torch.tensor([0, 1, 2]) if model.conditional else None
        mu, logvar = model.encode(x, y)  # what the likelihood task draws its latent figures from
        assert mu.shape == logvar.shape == (3, 2) and model.decode_mean(mu, y).shape == (3, *SHAPE)
        assert set(model.elbo(x, y)) == {"elbo", "recon", "kl"}
    assert not isinstance(_build("nade"), LatentVariableModel)


def test_a_latent_variable_model_must_provide_encode_decode_mean_and_elbo():
    from dlcamp.models.generative.base import LatentVariableModel

    class OnlyDensity(LatentVariableModel):
        input_shape = SHAPE

        def log_prob(self, x, condition=None):
            return x.new_zeros(len(x))

        def sample(self, n, condition=None):
            return torch.zeros(n, *SHAPE)

    with pytest.raises(TypeError, match="decode_mean.*elbo.*encode|abstract"):
        OnlyDensity()
