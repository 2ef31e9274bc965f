"""Image classifiers. Each has ``forward_features`` and ``forward_head`` (timm's interface)."""

from dlcamp.models.classification import mlp  # noqa: F401  (registers)
from dlcamp.models.classification import alexnet, densenet, googlenet, resnet, vgg, vit  # noqa: F401  (register)
