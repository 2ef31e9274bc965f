"""Our multiply-adds against torchvision's published figures for its ImageNet models.

torchvision publishes, per weight set, ``meta["_ops"]`` ("GFLOPS" in its docs) and
``meta["num_params"]``. The "GFLOPS" are giga multiply-adds of convs and linear layers at
3x224x224 in eval mode (half of ``torch.utils.flop_counter``'s count), which is what
``profile`` counts: no bias, norm, activation or pooling cost. The published figures are
read here from the installed torchvision, not copied.

Models are built on the meta device: the counts depend only on shapes
(``test_profile_on_meta_counts_what_a_real_run_counts`` checks that), and VGG-19's 143M
weights are never allocated or initialised.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn as nn

torchvision = pytest.importorskip("torchvision")

from dlcamp.metrics.complexity import profile  # noqa: E402
from dlcamp.models import get_model  # noqa: E402

IMAGENET = [
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "googlenet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
]


def published(name: str) -> dict:
    return torchvision.models.get_model_weights(name).DEFAULT.meta


@functools.cache
def ours(name: str) -> dict:
    with torch.device("meta"):
        model = get_model(name)
    return profile(model, (3, 224, 224))


@pytest.mark.parametrize("name", IMAGENET)
def test_macs_match_torchvision_published_gflops(name):
    gmacs = ours(name)["total_macs"] / 1e9
    assert gmacs == pytest.approx(published(name)["_ops"], rel=0.02)


@pytest.mark.parametrize("name", IMAGENET)
def test_params_that_run_match_torchvision_published_count(name):
    # googlenet's published weights have no aux heads; ours are built but not run by forward
    report = ours(name)
    assert report["total_params"] - report["params_not_run"] == published(name)["num_params"]


class _WithAux(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        return self.net.forward_with_aux(x)


def test_googlenet_published_gflops_leave_out_the_aux_heads():
    # 2% cannot tell (the heads add 0.6%); the published three decimals can.
    with torch.device("meta"):
        with_aux = profile(_WithAux(get_model("googlenet")), (3, 224, 224))["total_macs"] / 1e9
    main_path = ours("googlenet")["total_macs"] / 1e9
    figure = published("googlenet")["_ops"]
    assert abs(main_path - figure) <= 0.0005 < abs(with_aux - figure)
