"""FCN on a dilated ResNet: torchvision's ``fcn_resnet50`` and ``fcn_resnet101``.

Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015, arXiv:1411.4038; the backbone as in DeepLab (Chen et al., arXiv:1606.00915).

A classifier becomes a per-pixel classifier once its fully connected layers are
convolutions: it then maps an image of any size to a coarse map of class scores, and
bilinear upsampling brings the map back to the image's size. The coarser the map, the
blurrier the boundaries, so instead of FCN-8s's skips from finer layers this version keeps
the map fine at the source: the strides of ResNet's ``layer3`` and ``layer4`` are replaced
by dilation 2 and 4 (``replace_stride_with_dilation=[False, True, True]``, see
``dlcamp.models.classification.resnet``), so ``layer4`` sees as far as in the classifier
but at output stride 8, not 32. The head is a 3x3 conv (2048 -> 512), BN, ReLU, dropout and
a 1x1 conv to the K class scores; an auxiliary head of the same shape on ``layer3``'s output
(1024 channels) gives the lower stages a shorter gradient path during training (its loss is
usually weighted 0.5).

Module names and order are torchvision's, so state dicts are interchangeable
(``strict=True`` both ways). torchvision's published weights (COCO images, the 21 Pascal
VOC classes, background first) load from a file already on disk; nothing is downloaded::

    model = fcn_resnet50(num_classes=21, aux_loss=True)  # the file holds the aux head too
    model.load_state_dict(torch.load("fcn_resnet50_coco-1167a1af.pth", weights_only=True), strict=True)
    # fcn_resnet101: fcn_resnet101_coco-7ecb50ca.pth, the same arguments

Those weights expect RGB images scaled to [0, 1] and normalised with ImageNet's statistics,
mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) per channel (torchvision's preset
also resizes the shorter side to 520 pixels); the predicted class of each pixel is
``model(x)["out"].argmax(1)``.

Legend: B batch, C channels, H, W height and width of the input, h, w of the stride-8 maps,
K classes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.models import register_model
from dlcamp.models.classification.resnet import ResNet, resnet50, resnet101

# layer2 keeps its stride, layer3 and layer4 dilate (2, then 4): output stride 8
OUTPUT_STRIDE_8 = (False, True, True)


class FCNHead(nn.Sequential):
    """3x3 conv to C/4 channels, BN, ReLU, dropout, 1x1 conv to K scores: (B, C, h, w) -> (B, K, h, w).

    An ``nn.Sequential`` so its keys are torchvision's (``0.weight``, ``1.*``, ``4.weight``, ``4.bias``).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1) -> None:
        hidden = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1, bias=False),  # no bias: BN follows
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv2d(hidden, num_classes, kernel_size=1),
        )


class FCNResNet(nn.Module):
    """A ResNet's stem and stages (``backbone``), an ``FCNHead`` on the last, optionally one on the one before.

    ``forward(x)``: (B, C_in, H, W) -> ``{"out": (B, K, H, W)}``, plus ``"aux": (B, K, H, W)``
    (from the auxiliary head) when built with ``aux_loss``, in training and in eval mode
    alike, as torchvision. Both are logits, bilinearly upsampled to the input's size.
    """

    def __init__(self, net: ResNet, num_classes: int, *, aux_loss: bool = False) -> None:
        super().__init__()
        # The classifier's stem and stages under their own names, without its pool and fc:
        # torchvision's keys (backbone.conv1.weight, backbone.layer1.0.conv1.weight, ...).
        self.backbone = nn.ModuleDict({name: getattr(net, name) for name in net._stem_names + net._stage_names})
        widths = [getattr(net, name)[-1].last_norm().num_features for name in net._stage_names]
        self._aux_stage = net._stage_names[-2]  # layer3 on an ImageNet ResNet
        self.classifier = FCNHead(widths[-1], num_classes)
        self.aux_classifier = FCNHead(widths[-2], num_classes) if aux_loss else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        aux_features = None
        for name, module in self.backbone.items():
            x = module(x)
            if name == self._aux_stage:
                aux_features = x  # (B, 1024, h, w) on ResNet-50/101
        # x: (B, 2048, h, w), h = ceil(H / 8) on the dilated ResNet-50/101
        result = {"out": F.interpolate(self.classifier(x), size=size, mode="bilinear", align_corners=False)}
        if self.aux_classifier is not None:
            aux = self.aux_classifier(aux_features)  # (B, K, h, w)
            result["aux"] = F.interpolate(aux, size=size, mode="bilinear", align_corners=False)
        return result


@register_model("fcn_resnet50")
def fcn_resnet50(*, num_classes: int = 21, aux_loss: bool = False, in_channels: int = 3) -> FCNResNet:
    """FCN on a dilated ResNet-50 (output stride 8), torchvision-compatible; 33.0M params (35.3M with aux_loss)."""
    # num_classes=1: the classifier's fc is dropped, no need to build a wide one.
    net = resnet50(num_classes=1, in_channels=in_channels, replace_stride_with_dilation=OUTPUT_STRIDE_8)
    return FCNResNet(net, num_classes, aux_loss=aux_loss)


@register_model("fcn_resnet101")
def fcn_resnet101(*, num_classes: int = 21, aux_loss: bool = False, in_channels: int = 3) -> FCNResNet:
    """FCN on a dilated ResNet-101 (output stride 8), torchvision-compatible; 52.0M params (54.3M with aux_loss)."""
    net = resnet101(num_classes=1, in_channels=in_channels, replace_stride_with_dilation=OUTPUT_STRIDE_8)
    return FCNResNet(net, num_classes, aux_loss=aux_loss)
