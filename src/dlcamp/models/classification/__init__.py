"""Image classifiers. Each has ``forward_features`` and ``forward_head`` (timm's interface)."""

from dlcamp.models.classification import mlp  # noqa: F401  (registers)
