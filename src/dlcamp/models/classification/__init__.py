"""Image classifiers. Each has ``forward_features`` and ``forward_head`` (timm's interface)."""

from dlcamp.models.classification import (  # noqa: F401  (register)
    alexnet,
    densenet,
    googlenet,
    mlp,  # noqa: F401  (registers)
    resnet,
    vgg,
    vit,
)
