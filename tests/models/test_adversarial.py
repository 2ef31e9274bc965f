"""GAN losses against their closed forms and the theory they come from; the players' shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from dlcamp.models.adversarial.dcgan import DCGAN, pyramid
from dlcamp.models.adversarial.gan import GAN
from dlcamp.models.adversarial.losses import LOSSES, gradient_penalty, minimax_d

REAL = torch.tensor([2.0, -1.0, 0.5, 3.0])
FAKE = torch.tensor([-2.0, 0.3, 1.5, -0.7])


def _log_sigmoid(a):
    return math.log(1 / (1 + math.exp(-a)))


def _mean(values):
    values = list(values)
    return sum(values) / len(values)


# Each loss written out element by element from its paper's formula.
CLOSED = {
    "minimax": (
        lambda r, f: -_mean(_log_sigmoid(a) for a in r) - _mean(math.log(1 - 1 / (1 + math.exp(-a))) for a in f),
        lambda f: _mean(math.log(1 - 1 / (1 + math.exp(-a))) for a in f),
    ),
    "non_saturating": (
        lambda r, f: -_mean(_log_sigmoid(a) for a in r) - _mean(math.log(1 - 1 / (1 + math.exp(-a))) for a in f),
        lambda f: -_mean(_log_sigmoid(a) for a in f),
    ),
    "lsgan": (
        lambda r, f: 0.5 * _mean((a - 1) ** 2 for a in r) + 0.5 * _mean(a**2 for a in f),
        lambda f: 0.5 * _mean((a - 1) ** 2 for a in f),
    ),
    "hinge": (
        lambda r, f: _mean(max(0.0, 1 - a) for a in r) + _mean(max(0.0, 1 + a) for a in f),
        lambda f: -_mean(f),
    ),
    "wgan_gp": (lambda r, f: _mean(f) - _mean(r), lambda f: -_mean(f)),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_each_loss_equals_its_closed_form(name):
    d_closed, g_closed = CLOSED[name]
    loss = LOSSES[name]
    assert loss.d(REAL, FAKE).item() == pytest.approx(d_closed(REAL.tolist(), FAKE.tolist()), rel=1e-6)
    assert loss.g(FAKE).item() == pytest.approx(g_closed(FAKE.tolist()), rel=1e-6)


def test_the_saturating_generator_loss_has_no_gradient_where_the_non_saturating_one_does():
    # D rejects the sample with confidence: s(D(G(z))) = s(-10) ~ 4.5e-5
    fake = torch.tensor([-10.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(LOSSES["minimax"].g(fake), fake)
    (g_ns,) = torch.autograd.grad(LOSSES["non_saturating"].g(fake), fake)
    assert abs(g_sat.item()) < 1e-4 and abs(g_ns.item()) > 0.99


def _normal_pdf(x, mu, sd):
    return torch.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


P, Q = (0.0, 1.0), (1.0, 1.5)  # p_data = N(0, 1), p_G = N(1, 1.5²)


def _jsd() -> float:
    """JSD(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, by the trapezoid rule."""
    x = torch.linspace(-15, 16, 200_001, dtype=torch.float64)
    p, q = _normal_pdf(x, *P), _normal_pdf(x, *Q)
    m = (p + q) / 2
    return 0.5 * torch.trapezoid(p * torch.log(p / m), x).item() + 0.5 * torch.trapezoid(q * torch.log(q / m), x).item()


def test_the_optimal_discriminator_makes_the_value_minus_log4_plus_twice_the_jsd():
    # D*(x) = p / (p + q) = s(log p - log q); V(D*) = E_p log D* + E_q log(1 - D*) by quadrature
    x = torch.linspace(-15, 16, 200_001, dtype=torch.float64)
    p, q = _normal_pdf(x, *P), _normal_pdf(x, *Q)
    d_star = p / (p + q)
    value = torch.trapezoid(p * torch.log(d_star) + q * torch.log(1 - d_star), x).item()
    assert value == pytest.approx(-math.log(4) + 2 * _jsd(), abs=1e-6)
    # and our discriminator loss is -V: the same by Monte Carlo through the logits log p - log q
    g = torch.Generator().manual_seed(0)
    real = P[0] + P[1] * torch.randn(400_000, generator=g, dtype=torch.float64)
    fake = Q[0] + Q[1] * torch.randn(400_000, generator=g, dtype=torch.float64)

    def logit(v):
        return torch.log(_normal_pdf(v, *P)) - torch.log(_normal_pdf(v, *Q))

    assert -minimax_d(logit(real), logit(fake)).item() == pytest.approx(value, abs=5e-3)


def test_a_trained_discriminator_approaches_the_optimal_one():
    torch.manual_seed(0)
    d = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.Adam(d.parameters(), lr=3e-3)
    for _ in range(1500):
        real = P[0] + P[1] * torch.randn(512, 1)
        fake = Q[0] + Q[1] * torch.randn(512, 1)
        loss = minimax_d(d(real).squeeze(1), d(fake).squeeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.linspace(-2.5, 3.5, 61)[:, None]
    d_star = _normal_pdf(x, *P) / (_normal_pdf(x, *P) + _normal_pdf(x, *Q))
    with torch.no_grad():
        learned = torch.sigmoid(d(x))
    # where both densities have mass, D's probability is within 0.05 of p / (p + q)
    assert (learned - d_star).abs().max().item() < 0.05


def test_gradient_penalty_equals_its_autograd_definition():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 1))
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    penalty = gradient_penalty(lambda v: critic(v).squeeze(1), real, fake, generator=torch.Generator().manual_seed(3))
    eps = torch.rand(5, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    norms = []
    for i in range(5):  # one sample at a time: ||d D(x^_i) / d x^_i||_2
        xi = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(xi).sum(), xi)
        norms.append(grad.norm())
    expected = ((torch.stack(norms) - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    # the penalty trains the critic: it has a gradient with respect to the critic's weights
    penalty.backward()
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0


def test_a_gan_fits_a_one_dimensional_gaussian():
    """N(3, 0.5²) from N(0, 4-d) noise: mean within 0.1, standard deviation within 40%.

    The tolerance on the spread is wide because GANs under-disperse: with this setting the
    standard deviation ended between 0.31 and 0.54 over seeds 0-4 (the mean within 0.01),
    and lower learning rates, larger batches, LSGAN or an averaged generator did not narrow
    it. A collapsed generator (std near 0) or a diverged one still fails."""
    torch.manual_seed(0)
    model = GAN(input_shape=[1], latent_dim=4, hidden=[32, 32], d_hidden=[32, 32])
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    loss = LOSSES["non_saturating"]
    for _ in range(2500):
        real = 3 + 0.5 * torch.randn(128, 1)
        fake = model.generate(model.latent(128))
        d_loss = loss.d(model.discriminate(real), model.discriminate(fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = loss.g(model.discriminate(model.generate(model.latent(128))))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    with torch.no_grad():
        x = model.sample(20_000, generator=torch.Generator().manual_seed(1))
    assert x.mean().item() == pytest.approx(3.0, abs=0.1)
    assert x.std().item() == pytest.approx(0.5, rel=0.4)


@pytest.mark.parametrize("size, expected", [(8, (4, 1)), (10, (5, 1)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4))])
def test_dcgan_pyramid(size, expected):
    assert pyramid(size) == expected


@pytest.mark.parametrize("size", [6, 9, 30])
def test_dcgan_refuses_sizes_without_a_pyramid(size):
    with pytest.raises(ValueError, match="s0"):
        DCGAN(input_shape=[1, size, size])


@pytest.mark.parametrize(
    "build",
    [
        lambda: GAN(input_shape=[1, 8, 8], num_classes=10),
        lambda: GAN(input_shape=[1, 8, 8], num_classes=10, condition="projection"),
        lambda: DCGAN(input_shape=[1, 32, 32], width=8, num_classes=10),
        lambda: DCGAN(input_shape=[1, 32, 32], width=8, num_classes=10, condition="projection", d_norm="layer"),
    ],
    ids=["cgan-concat", "cgan-projection", "cdcgan-concat", "cdcgan-projection"],
)
def test_conditional_players_read_the_class(build):
    torch.manual_seed(0)
    model = build().eval()
    z = model.latent(4)
    a, b = torch.zeros(4, dtype=torch.long), torch.full((4,), 7)
    x = model.generate(z, a)
    assert x.shape == (4, *model.input_shape) and x.abs().max() <= 1  # tanh images in [-1, 1]
    assert not torch.allclose(x, model.generate(z, b))
    assert not torch.allclose(model.discriminate(x, a), model.discriminate(x, b))
    with pytest.raises(ValueError, match="conditional"):
        model.generate(z)


def test_dcgan_weights_start_from_n_0_002():
    torch.manual_seed(0)
    model = DCGAN(input_shape=[1, 32, 32])
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d) or type(m).__name__ == "ConvTranspose2d"]
    w = torch.cat([c.detach().flatten() for c in convs])
    assert w.mean().abs() < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(abs(m.weight.mean().item() - 1) < 0.02 for m in bns)


def test_the_moving_average_follows_the_generator_and_belongs_to_no_group():
    torch.manual_seed(0)
    model = GAN(input_shape=[2], latent_dim=3, hidden=[8], d_hidden=[8])
    model.enable_ema()
    start = [p.clone() for p in model.generator_ema.parameters()]
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
    model.update_ema(0.9)
    for e, s in zip(model.generator_ema.parameters(), start):
        assert torch.allclose(e, s + 0.1, atol=1e-6)  # 0.9 * s + 0.1 * (s + 1)
    grouped = {id(p) for g in model.param_groups().values() for p in g.parameters()}
    assert not any(id(p) in grouped for p in model.generator_ema.parameters())
    assert all(not p.requires_grad for p in model.generator_ema.parameters())
    assert {n.split(".")[0] for n in model.state_dict()} == {"generator", "discriminator", "generator_ema"}
