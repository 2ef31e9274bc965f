"""RoI pooling and RoI Align: a fixed-size feature map for each box, in plain torch.

A two-stage detector classifies each proposal from the backbone's feature map. The
proposals have all sizes and shapes, the classifier wants a fixed (h, w) grid, so each
region of interest (RoI) is cut out of the map and resampled to that grid.

- RoI pooling (Girshick, "Fast R-CNN", 2015, arXiv:1504.08083) rounds the box to whole
  feature cells, splits it into h x w bins (their edges rounded too) and max-pools each
  bin. The two roundings misplace the features by up to a cell, which at stride 16 is
  16 pixels: harmless for classification, harmful for masks and precise boxes.
- RoI Align (He et al., "Mask R-CNN", 2017, arXiv:1703.06870) rounds nothing: each bin
  is sampled at a regular g_h x g_w grid of points by bilinear interpolation and the
  samples are averaged. ``aligned=True`` shifts the box by half a cell first, so that
  a box's pixel coordinates meet the feature map's cell centres (Detectron2's
  correction); ``aligned=False`` is the original, which also stretches boxes smaller
  than a cell to one cell.

How RoI Align is computed here. A sample's bilinear weight is a product of a weight in
y and a weight in x, and averaging over the sample grid is a sum in y times a sum in x,
so the whole output is *separable*:

    out[k, c, p, q] = sum_h sum_w Ay[k, p, h] * F[b_k, c, h, w] * Ax[k, q, w],

where Ay[k, p, :] (length H) holds the interpolation weights of bin row p's samples,
already averaged, and Ax[k, q, :] the same for columns. Both are built with two
scatter-adds, and the output is two batched matrix products per image: no loop over
RoIs, no gather of K x C x samples values, and autograd differentiates the matmuls
(the backward pass is two more matmuls, not a scatter into the input). The cost is
O(K C P H W) multiply-adds per image, which for feature maps of detector size is a few
milliseconds on a CPU.

Semantics follow ``torchvision.ops.roi_align`` / ``roi_pool`` exactly, including their
edge cases: a sample more than one cell outside the map counts as 0 (but still counts in
the average), one within a cell of the border is clamped onto it; ``sampling_ratio``
<= 0 means an adaptive ceil(roi_size / output_size) samples per bin, per RoI. The boxes
get no gradient (they are proposals, treated as constants, as in torchvision).

Shapes: B images, C channels, H, W the feature map, K RoIs, P, Q = output_size (h, w),
G the largest number of samples per bin along an axis.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlcamp.errors import UsageError

__all__ = ["RoIAlign", "RoIPool", "roi_align", "roi_pool"]


def _rois(boxes: Tensor | list[Tensor], dtype: torch.dtype, device: torch.device) -> Tensor:
    """(K, 5) (batch index, x1, y1, x2, y2) from either box format, detached, in ``dtype``."""
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise UsageError(
                f"RoI boxes as one tensor must be (K, 5) (batch index, x1, y1, x2, y2), got {tuple(boxes.shape)}"
            )
        return boxes.detach().to(dtype=dtype, device=device)
    if not isinstance(boxes, (list, tuple)):
        raise UsageError(f"RoI boxes must be a (K, 5) tensor or a list of (L, 4) tensors, got {type(boxes).__name__}")
    for i, per_image in enumerate(boxes):
        if not isinstance(per_image, Tensor) or per_image.dim() != 2 or per_image.shape[1] != 4:
            shape = tuple(per_image.shape) if isinstance(per_image, Tensor) else type(per_image).__name__
            raise UsageError(f"RoI boxes of image {i} must be a (L, 4) tensor, got {shape}")
    if not boxes:
        return torch.zeros((0, 5), dtype=dtype, device=device)
    batch_index = torch.cat([torch.full((len(b),), float(i), dtype=dtype, device=device) for i, b in enumerate(boxes)])
    coords = torch.cat([b.detach().to(dtype=dtype, device=device) for b in boxes])
    return torch.cat((batch_index[:, None], coords), dim=1)


def _image_indices(rois: Tensor, batch: int) -> Tensor:
    """The RoIs' batch indices (K,) as int64, checked against the batch size."""
    image_of = rois[:, 0].long()
    if bool(((image_of < 0) | (image_of >= batch)).any()):
        raise UsageError(f"RoI batch indices must lie in [0, {batch - 1}] for a batch of {batch} feature maps")
    return image_of


def _pair(output_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, int):
        return output_size, output_size
    height, width = output_size
    return int(height), int(width)


def _check_input(input: Tensor) -> None:
    if input.dim() != 4:
        raise UsageError(f"RoI input must be a (B, C, H, W) feature map, got shape {tuple(input.shape)}")


def _axis_weights(start: Tensor, size: Tensor, bins: int, grid: Tensor, length: int) -> Tensor:
    """Averaged bilinear weights (K, bins, length) of each bin's samples along one axis.

    ``start``, ``size`` (K,): the RoI's start and extent on this axis, in cells;
    ``grid`` (K,) int64: samples per bin along this axis.
    """
    dtype, device = start.dtype, start.device
    bin_size = size / bins  # (K,)
    most = max(int(grid.max()), 1) if grid.numel() else 1
    bin_index = torch.arange(bins, device=device, dtype=dtype)  # (P,)
    sample_index = torch.arange(most, device=device, dtype=dtype)  # (G,)
    grid_f = grid.to(dtype).clamp(min=1)[:, None, None]  # (K, 1, 1)
    # Sample positions, with torchvision's order of operations, (K, P, G).
    coord = (start[:, None, None] + bin_index[None, :, None] * bin_size[:, None, None]) + (
        (sample_index[None, None, :] + 0.5) * bin_size[:, None, None]
    ) / grid_f
    # A sample further than one cell from the map contributes 0; one in that margin is
    # clamped onto the border, where interpolation degenerates to the border cell.
    used = (sample_index[None, None, :] < grid[:, None, None]) & (coord >= -1.0) & (coord <= length)
    coord = coord.clamp(min=0)
    low = coord.floor().long()
    at_end = low >= length - 1
    low = torch.where(at_end, torch.full_like(low, length - 1), low)
    high = torch.where(at_end, low, low + 1)
    coord = torch.where(at_end, low.to(dtype), coord)
    frac = coord - low.to(dtype)  # weight of the high neighbour
    scale = used.to(dtype) / grid_f  # average over this axis's samples
    weights = torch.zeros(start.shape[0], bins, length, dtype=dtype, device=device)  # (K, P, length)
    weights.scatter_add_(2, low, (1 - frac) * scale)
    weights.scatter_add_(2, high, frac * scale)
    return weights


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoI Align: (K, C, P, Q) features of each box, bilinearly sampled and averaged per bin.

    Args:
        input: (B, C, H, W) feature map.
        boxes: (K, 5) (batch index, x1, y1, x2, y2), or a list of (L_i, 4) boxes per image,
            in image coordinates.
        output_size: P = Q = int, or (P, Q).
        spatial_scale: feature cells per image pixel (1 / stride), e.g. 1 / 16.
        sampling_ratio: samples per bin along each axis; <= 0 adapts it per RoI to
            ceil(roi_size / output_size).
        aligned: shift boxes by -0.5 cell so pixel and cell centres meet (see the module
            docstring).
    """
    _check_input(input)
    out_h, out_w = _pair(output_size)
    batch, channels, height, width = input.shape
    rois = _rois(boxes, input.dtype, input.device)  # (K, 5)
    num_rois = rois.shape[0]
    if num_rois == 0:
        return input.new_zeros((0, channels, out_h, out_w))
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:  # the original stretches RoIs under one cell to one cell
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full((num_rois,), sampling_ratio, dtype=torch.int64, device=input.device)
        grid_w = grid_h
    else:
        grid_h = torch.ceil(roi_h / out_h).long()
        grid_w = torch.ceil(roi_w / out_w).long()
    weights_y = _axis_weights(y1, roi_h, out_h, grid_h, height)  # (K, P, H)
    weights_x = _axis_weights(x1, roi_w, out_w, grid_w, width)  # (K, Q, W)

    image_of = _image_indices(rois, batch)  # (K,)
    members_list, pooled_list = [], []
    for b in range(batch):
        members = torch.where(image_of == b)[0]
        k = members.numel()
        if k == 0:
            continue
        features = input[b].permute(1, 0, 2).reshape(height, channels * width)  # (H, C * W)
        rows = weights_y[members].reshape(k * out_h, height) @ features  # (k * P, C * W)
        rows = rows.reshape(k, out_h * channels, width)  # (k, P * C, W)
        pooled = rows @ weights_x[members].transpose(1, 2)  # (k, P * C, Q)
        members_list.append(members)
        pooled_list.append(pooled.reshape(k, out_h, channels, out_w))
    # Put the RoIs back in their input order: invert the image-by-image permutation.
    output = torch.cat(pooled_list)[torch.argsort(torch.cat(members_list))]  # (K, P, C, Q)
    return output.permute(0, 2, 1, 3)  # (K, C, P, Q)


def _round_half_away(x: Tensor) -> Tensor:
    """C's round(): halves go away from zero (torch.round sends them to the even neighbour)."""
    truncated = torch.trunc(x)
    return torch.where((x - truncated).abs() == 0.5, truncated + torch.sign(x), torch.round(x))


def _bin_edges(start: Tensor, end: Tensor, bins: int, length: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Integer [first, stop) cell ranges (K, bins) of RoI pooling's bins along one axis."""
    roi_size = (end - start + 1).clamp(min=1)  # (K,) whole cells
    bin_size = roi_size.to(dtype) / bins  # (K,)
    index = torch.arange(bins, device=start.device, dtype=dtype)  # (P,)
    first = torch.floor(index[None, :] * bin_size[:, None]).long() + start[:, None]
    stop = torch.ceil((index[None, :] + 1) * bin_size[:, None]).long() + start[:, None]
    return first.clamp(0, length), stop.clamp(0, length)


def roi_pool(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """RoI max pooling: (K, C, P, Q), the max of each bin of each box rounded to whole cells.

    Arguments as in :func:`roi_align`. An empty bin (a box outside the map) gives 0. The
    gradient goes to the first maximum of each bin, in row-major order.
    """
    _check_input(input)
    out_h, out_w = _pair(output_size)
    batch, channels, height, width = input.shape
    rois = _rois(boxes, input.dtype, input.device)
    num_rois = rois.shape[0]
    if num_rois == 0:
        return input.new_zeros((0, channels, out_h, out_w))
    corners = _round_half_away(rois[:, 1:] * spatial_scale).long()  # (K, 4) whole cells
    row_first, row_stop = _bin_edges(corners[:, 1], corners[:, 3], out_h, height, input.dtype)  # (K, P)
    col_first, col_stop = _bin_edges(corners[:, 0], corners[:, 2], out_w, width, input.dtype)  # (K, Q)
    span_h = max(int((row_stop - row_first).max()), 1)
    span_w = max(int((col_stop - col_first).max()), 1)
    rows = row_first[:, :, None] + torch.arange(span_h, device=input.device)  # (K, P, Mh)
    cols = col_first[:, :, None] + torch.arange(span_w, device=input.device)  # (K, Q, Mw)
    row_ok = rows < row_stop[:, :, None]
    col_ok = cols < col_stop[:, :, None]
    flat = (
        _image_indices(rois, batch)[:, None, None, None, None] * (height * width)
        + rows.clamp(max=height - 1)[:, :, :, None, None] * width
        + cols.clamp(max=width - 1)[:, None, None, :, :]
    )  # (K, P, Mh, Q, Mw)
    cells = input.permute(0, 2, 3, 1).reshape(batch * height * width, channels)  # (B * H * W, C)
    values = cells[flat.reshape(-1)].reshape(num_rois, out_h, span_h, out_w, span_w, channels)
    inside = row_ok[:, :, :, None, None, None] & col_ok[:, None, None, :, :, None]
    values = values.masked_fill(~inside, float("-inf"))
    values = values.permute(0, 5, 1, 3, 2, 4).reshape(num_rois, channels, out_h, out_w, span_h * span_w)
    pooled = values.max(dim=-1).values  # (K, C, P, Q)
    empty = ~(row_ok.any(-1)[:, :, None] & col_ok.any(-1)[:, None, :])  # (K, P, Q)
    return pooled.masked_fill(empty[:, None], 0.0)


class RoIAlign(nn.Module):
    """:func:`roi_align` as a module (no parameters)."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


class RoIPool(nn.Module):
    """:func:`roi_pool` as a module (no parameters)."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
