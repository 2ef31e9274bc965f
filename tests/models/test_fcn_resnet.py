"""Our fcn_resnet50 against torchvision's: interchangeable state dicts, same outputs; it learns.

torchvision's model is built with seeded random weights and randomised batch-norm
statistics and affine parameters; ours is built by its own builder (its own init) and
then takes torchvision's state dict with ``strict=True``, and a second torchvision model
takes ours with ``strict=True``. Outputs agree to rtol = atol = 1e-4 on a 75x90 input (not
a multiple of 8, so the upsampling back to the input's size is exercised), in eval mode and
in training mode (batch statistics; dropout with the same seed before each forward: the two
draw their masks in the same order, main head first).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models.segmentation as tvs
from tests.conftest import randomise_norms

from dlcamp.models import get_model

RTOL = ATOL = 1e-4
NUM_CLASSES = 5


def _torchvision(aux_loss: bool) -> nn.Module:
    return tvs.fcn_resnet50(weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=aux_loss)


def _ours_and_torchvision(aux_loss: bool) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    reference = _torchvision(aux_loss)
    randomise_norms(reference)
    ours = get_model("fcn_resnet50", num_classes=NUM_CLASSES, aux_loss=aux_loss)
    assert list(ours.state_dict()) == list(reference.state_dict())  # same names, same order
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.device("meta"):
        other = _torchvision(aux_loss)
    other.load_state_dict(ours.state_dict(), strict=True, assign=True)  # and the other way round
    return ours, reference


def _input() -> torch.Tensor:
    return torch.randn(1, 3, 75, 90, generator=torch.Generator().manual_seed(2))


def test_fcn_resnet50_with_aux_matches_torchvision_in_eval_mode():
    ours, reference = _ours_and_torchvision(aux_loss=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    x = _input()
    with torch.no_grad():
        got, expected = ours.eval()(x), reference.eval()(x)
    assert list(got) == list(expected) == ["out", "aux"]  # aux also in eval mode, as torchvision
    for key in ("out", "aux"):
        assert got[key].shape == (1, NUM_CLASSES, 75, 90)
        torch.testing.assert_close(got[key], expected[key], rtol=RTOL, atol=ATOL, msg=key)


def test_fcn_resnet50_with_aux_matches_torchvision_in_training_mode():
    ours, reference = _ours_and_torchvision(aux_loss=True)
    x = _input()
    with torch.no_grad():
        torch.manual_seed(7)
        expected = reference.train()(x)
        torch.manual_seed(7)
        got = ours.train()(x)
    for key in ("out", "aux"):
        torch.testing.assert_close(got[key], expected[key], rtol=RTOL, atol=ATOL, msg=key)
    # the batch statistics moved the running ones alike
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=RTOL, atol=ATOL, msg=key)


def test_fcn_resnet50_without_aux_matches_torchvision():
    ours, reference = _ours_and_torchvision(aux_loss=False)
    assert not any(k.startswith("aux_classifier") for k in ours.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    x = _input()
    with torch.no_grad():
        got, expected = ours.eval()(x), reference.eval()(x)
    assert list(got) == list(expected) == ["out"]
    torch.testing.assert_close(got["out"], expected["out"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name, reference", [("fcn_resnet50", tvs.fcn_resnet50), ("fcn_resnet101", tvs.fcn_resnet101)])
def test_default_builds_have_torchvision_keys_and_shapes(name, reference):
    with torch.device("meta"):  # 21 VOC classes and the aux head: the layout of the published weights
        ours = get_model(name, aux_loss=True)
        theirs = reference(weights=None, weights_backbone=None, aux_loss=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_in_channels_changes_the_first_conv_only():
    with torch.device("meta"):
        gray, rgb = get_model("fcn_resnet50", in_channels=1), get_model("fcn_resnet50")
    differ = [k for k, v in gray.state_dict().items() if v.shape != rgb.state_dict()[k].shape]
    assert differ == ["backbone.conv1.weight"] and gray.backbone.conv1.in_channels == 1


def test_fcn_resnet50_overfits_one_batch():
    # Two 48x48 images whose label map (3 classes: background, a square, a disc) is drawn
    # into the pixels, plus noise; Adam on out + 0.5 * aux brings the loss below a quarter of
    # its start (to ~14%) in 12 steps. Few steps, small images: on one thread each step
    # costs ~0.5 s, most of it Adam's update and the weight gradients of 35M parameters.
    torch.manual_seed(0)
    side = 48
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    labels = torch.zeros(2, side, side, dtype=torch.long)
    labels[0, 8:28, 10:30] = 1
    labels[0][(yy - 34) ** 2 + (xx - 34) ** 2 < 80] = 2
    labels[1][(yy - 16) ** 2 + (xx - 20) ** 2 < 120] = 2
    labels[1, 28:44, 26:44] = 1
    images = F.one_hot(labels, 3).permute(0, 3, 1, 2).float() + 0.3 * torch.randn(2, 3, side, side)  # (2, 3, H, W)

    model = get_model("fcn_resnet50", num_classes=3, aux_loss=True).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        outputs = model(images)
        loss = F.cross_entropy(outputs["out"], labels) + 0.5 * F.cross_entropy(outputs["aux"], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses
