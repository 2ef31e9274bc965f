"""Object detectors: SSD (one stage) and Faster R-CNN (two stages), on ``dlcamp.models.backbones``.

``ssd`` and ``fasterrcnn`` are registered models; both follow the ``Detector`` interface of
``base`` (``loss`` for training, ``detect`` for inference), which the detection task calls.
One room per concept: ``base`` (interface, batching, matching, post-processing), ``ssd``,
``rpn`` (Faster R-CNN's region proposal network), ``roi_heads`` (its second stage: RoI
pooling and the box head) and ``fasterrcnn`` (the model composing body, RPN and RoI heads).
"""
