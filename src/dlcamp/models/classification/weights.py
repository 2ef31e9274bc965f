"""Load torchvision's published ImageNet weights into our models, from a local file.

The ImageNet builders (``alexnet``, ``vgg16_bn``, ``googlenet``, ``resnet50``,
``densenet121``, ...) use torchvision's state-dict names and shapes, so torchvision's
``.pth`` files load with ``strict=True``. Nothing is downloaded: the user fetches the file
(its address is in torchvision's weights enums, e.g.
``torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url``) and passes its path.

Build the model with the arguments torchvision uses for its weights: ``googlenet`` with
``transform_input=True`` (its weights expect [-1, 1] inputs) and ``aux_logits=True`` (the
file holds the auxiliary heads too); every model with ``num_classes=1000``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from dlcamp.errors import DataNotFoundError, UsageError

__all__ = ["load_torchvision_weights", "torchvision_weight_urls"]

# torchvision's published DenseNet files predate its current module names: a dense layer's
# "norm1" was "norm.1" (and so for relu and conv). The same renaming as torchvision applies.
_LEGACY_DENSE_LAYER_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


def torchvision_weight_urls(arch: str) -> dict[str, str]:
    """``{"ResNet50_Weights.IMAGENET1K_V1": url, ...}`` for a torchvision model name ({} if unknown).

    Read from the installed torchvision's weights enums, so the addresses are the ones
    that version publishes.
    """
    import torchvision.models as tvm

    try:
        weights_enum = tvm.get_model_weights(arch)
    except (ValueError, KeyError):
        return {}
    return {f"{weights_enum.__name__}.{w.name}": w.url for w in weights_enum}


def _where_published(path: Path, arch: str | None) -> str:
    # torchvision names its files "<arch>-<hash>.pth" (resnet50-0676ba61.pth, vgg16_bn-6c64b313.pth).
    arch = arch or path.name.split("-")[0].removesuffix(".pth")
    urls = torchvision_weight_urls(arch)
    if urls:
        listed = "; ".join(f"{name}: {url}" for name, url in urls.items())
        return f"torchvision publishes the {arch} weights at {listed}"
    import torchvision.models as tvm

    example = tvm.ResNet50_Weights.IMAGENET1K_V1
    return (
        "torchvision publishes each model's weights in its weights enums "
        f"(torchvision.models.get_model_weights(name), e.g. ResNet50_Weights.IMAGENET1K_V1: {example.url}); "
        "pass arch='<torchvision model name>' to name the file expected"
    )


def load_torchvision_weights(model: nn.Module, path: str | os.PathLike[str], *, arch: str | None = None) -> nn.Module:
    """Load a torchvision ``.pth`` state dict from ``path`` into ``model`` (strict) and return the model.

    ``arch`` (a torchvision model name such as ``"resnet50"``) only words the error message
    for a missing file; by default it is read from the file name. Raises
    ``DataNotFoundError`` when the file is missing (naming where torchvision publishes it)
    and ``UsageError`` when its weights do not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"no weights file at {path}; {_where_published(path, arch)}; "
            "download it there and pass its local path (dlcamp downloads nothing)"
        )
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping):
        raise UsageError(
            f"{path} holds a {type(state_dict).__name__}, not a state dict (a mapping of names to tensors)"
        )
    state_dict = {_LEGACY_DENSE_LAYER_KEY.sub(r"\1\2.", key): value for key, value in state_dict.items()}
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise UsageError(
            f"the weights in {path} do not fit this {type(model).__name__} (build it with the "
            f"arguments torchvision used for them, e.g. num_classes=1000): {err}"
        ) from None
    return model
