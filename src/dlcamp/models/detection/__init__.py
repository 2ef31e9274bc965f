"""Object detectors: SSD (one stage) and Faster R-CNN (two stages), on backbones of their own or the CNN family's.

``ssd`` and ``fasterrcnn`` are registered models; both follow the ``Detector`` interface of
``base`` (``loss`` for training, ``detect`` for inference), which the detection task calls.
"""

from dlcamp.models.detection import fasterrcnn, ssd  # noqa: F401  (registers)
