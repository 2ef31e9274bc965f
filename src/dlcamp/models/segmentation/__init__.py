"""Semantic segmentation: fully convolutional networks that classify every pixel.

One room per concept: ``fcn`` (Long, Shelhamer & Darrell's FCN-32s/16s/8s: a VGG16
classifier convolutionalized, score layers, skips from pool4 and pool3, bilinear-initialised
transposed convolutions, crops computed from the layers' geometry; and the same heads on any
registered backbone, sized for 128x128 scenes) and ``fcn_resnet`` (torchvision's
``fcn_resnet50`` layout: a dilated ResNet-50, an FCN head and an auxiliary head, state dicts
interchangeable). Models return logits [B, K, H, W] at the input's size, or torchvision's
dict ``{"out": ..., "aux": ...}``.
"""
