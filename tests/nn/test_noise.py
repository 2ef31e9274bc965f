"""Input noise (GaussianNoise) and weight noise (weight_noise)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcamp.nn import GaussianNoise, weight_noise


def test_gaussian_noise_is_the_identity_in_eval():
    x = torch.randn(32, 8)
    assert torch.equal(GaussianNoise(0.5).eval()(x), x)


def test_gaussian_noise_has_the_given_std_in_training():
    torch.manual_seed(0)
    x = torch.full((1_000_000,), 3.0, dtype=torch.float64)
    noise = GaussianNoise(0.25).train()(x) - x
    # 1e6 samples: the sample mean's std is 2.5e-4, the sample std's about 1.8e-4.
    assert abs(noise.mean().item()) < 2e-3
    assert abs(noise.std().item() - 0.25) < 2e-3


def test_gaussian_noise_rejects_negative_std():
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(-1.0)


def make_model_and_batch():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x = torch.randn(32, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (32,))
    return model, x, y


def gradients_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


def test_weight_noise_perturbs_every_weight_then_restores_them_exactly():
    model, x, y = make_model_and_batch()
    clean = [p.detach().clone() for p in model.parameters()]
    with weight_noise(model, std=0.1):
        noisy = [p.detach().clone() for p in model.parameters()]
        F.cross_entropy(model(x), y).backward()
    for p, p_clean, p_noisy in zip(model.parameters(), clean, noisy):
        assert torch.equal(p, p_clean)  # bit for bit, not approximately
        assert (p_noisy != p_clean).all()  # every entry was perturbed
    noise = torch.cat([(p_noisy - p_clean).flatten() for p_noisy, p_clean in zip(noisy, clean)])
    assert abs(noise.std().item() - 0.1) < 0.02  # 163 draws: the sample std's std is ~0.0055


def test_weight_noise_gradient_is_taken_at_the_noisy_point_and_applied_to_clean_weights():
    model, x, y = make_model_and_batch()
    clean = [p.detach().clone() for p in model.parameters()]
    clean_grads = gradients_at(model, x, y)

    model.zero_grad()
    with weight_noise(model, std=0.05):
        noisy = [p.detach().clone() for p in model.parameters()]
        F.cross_entropy(model(x), y).backward()
    noisy_point_grads = [p.grad.clone() for p in model.parameters()]

    # The gradient differs from the clean one ...
    assert any(not torch.allclose(g, g_clean) for g, g_clean in zip(noisy_point_grads, clean_grads))
    # ... and is exactly the gradient of the loss at the noisy weights.
    reference = make_model_and_batch()[0]
    with torch.no_grad():
        for p, p_noisy in zip(reference.parameters(), noisy):
            p.copy_(p_noisy)
    for g, g_ref in zip(noisy_point_grads, gradients_at(reference, x, y)):
        torch.testing.assert_close(g, g_ref, atol=0, rtol=0)

    # The optimizer then steps from the clean weights.
    lr = 0.5
    torch.optim.SGD(model.parameters(), lr=lr).step()
    for p, p_clean, g in zip(model.parameters(), clean, noisy_point_grads):
        torch.testing.assert_close(p.detach(), p_clean - lr * g, atol=1e-15, rtol=0)


def test_weight_noise_restores_weights_when_the_step_fails():
    model, x, y = make_model_and_batch()
    clean = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match="boom"):
        with weight_noise(model, std=1.0):
            raise RuntimeError("boom")
    assert all(torch.equal(p, p_clean) for p, p_clean in zip(model.parameters(), clean))


def test_weight_noise_leaves_frozen_parameters_and_zero_std_alone():
    model, x, y = make_model_and_batch()
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    clean_grads = gradients_at(model, x, y)
    with weight_noise(model, std=0.1):
        assert torch.equal(model[0].weight, frozen)
    with weight_noise(model, std=0.0):
        grads = gradients_at(model, x, y)
    assert all(torch.equal(g, g_clean) for g, g_clean in zip(grads, clean_grads))
    with pytest.raises(ValueError, match="std"):
        with weight_noise(model, std=-0.1):
            pass
