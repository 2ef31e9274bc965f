"""Drawing the shapes world: stuff textures, clutter and things, rasterised with numpy.

The pieces ``render_scene`` (in ``world``) puts together; every random draw comes from the
generator it is handed, in a fixed order, so a scene never changes.

- ``draw_background``: 2 (30% of the time 3) regions split by sine-wave boundaries, each
  filled with its stuff class's texture (sky: soft bands, grass: wavy blades, sand:
  speckle, water: ripples) and pixel noise.
- ``paint_clutter``: thin scribbles and small blobs in stuff-like muted colours.
- ``thing_mask``: a thing rasterised on its own window with vectorised tests: half-planes
  for the square and triangle, a union of two rectangles for the cross, a folded polar
  test for the star.

Stuff class s (``world.STUFF_CLASSES[s]``) has texture s here. Shape letters: H, W image
height and width (a square: both ``size``).
"""

from __future__ import annotations

import numpy as np

# Stuff textures, one per stuff class: muted, darker base colours (so things stand out)
# and a luminance pattern.
STUFF_BASE = np.array([(95, 120, 150), (60, 100, 55), (140, 125, 90), (40, 65, 100)], dtype=np.float32)
STUFF_CONTRAST = np.array([0.10, 0.16, 0.12, 0.18], dtype=np.float32)  # amplitude of the pattern
PIXEL_NOISE = 4.0  # std of the grain added to every background pixel (0..255 scale)
STAR_INNER = 0.45  # inner/outer radius of the star: fatter than a pentagram (0.38), easier to see


# -- background -----------------------------------------------------------------------------


def _sin_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sin(a[:, None] + b[None, :]) from 1-D angles: two outer products instead of an [H, W] sine."""
    return np.outer(np.sin(a), np.cos(b)) + np.outer(np.cos(a), np.sin(b))


def _stuff_pattern(stuff: int, coords: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A luminance pattern in about [-1, 1], float32 [H, W], with a random phase and frequency.

    Every pattern is a sine of (row term + column term), computed separably (``_sin_sum``).
    """
    phase, phase2 = rng.uniform(0, 2 * np.pi, 2)
    zero = np.zeros_like(coords)
    if stuff == 0:  # sky: soft slanted bands
        f = rng.uniform(0.08, 0.16)
        return 0.7 * _sin_sum(f * coords + phase, zero) + 0.3 * _sin_sum(f * coords + phase2, 0.5 * f * coords)
    if stuff == 1:  # grass: vertical blades, bent by a slow wave
        return _sin_sum(1.5 * np.sin(0.15 * coords + phase2), rng.uniform(0.9, 1.3) * coords + phase)
    if stuff == 2:  # sand: a slow diagonal ripple speckled with dark grains
        f = rng.uniform(0.1, 0.2)
        ripple = 0.4 * _sin_sum(-f * coords, f * coords + phase)
        return ripple - 1.6 * (rng.random(ripple.shape, dtype=np.float32) < 0.05)
    # water: horizontal ripples bent by a wave
    bend = 2.0 * np.sin(rng.uniform(0.06, 0.12) * coords + phase2)
    return _sin_sum(rng.uniform(0.35, 0.6) * coords + phase, bend)


def draw_background(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textured background: image float32 [H, W, 3], region map int [H, W], stuff class per region."""
    coords = np.arange(size, dtype=np.float32)
    n_regions = 3 if rng.random() < 0.3 else 2
    stuff_of_region = rng.choice(len(STUFF_BASE), n_regions, replace=False)
    vertical = rng.random() < 0.25  # mostly horizon-like boundaries
    # boundary k sits around its own band of the image, so every region keeps some area
    centres = [0.5] if n_regions == 2 else [0.33, 0.67]
    region = np.zeros((size, size), dtype=np.int64)
    for c in centres:
        base = size * (c + rng.uniform(-0.12, 0.12))
        amp, freq, phase = (
            size * rng.uniform(0.02, 0.08),
            rng.uniform(1, 3) * 2 * np.pi / size,
            rng.uniform(0, 2 * np.pi),
        )
        boundary = base + amp * np.sin(freq * coords + phase)  # (size,): along the other axis
        region += coords[None, :] > boundary[:, None] if vertical else coords[:, None] > boundary[None, :]
    patterns = [STUFF_CONTRAST[stuff] * _stuff_pattern(stuff, coords, rng) for stuff in stuff_of_region]
    lum = patterns[0].astype(np.float32)  # (H, W)
    for r in range(1, n_regions):
        np.copyto(lum, patterns[r], where=region == r, casting="unsafe")
    image = np.take(STUFF_BASE[stuff_of_region], region, axis=0)  # (H, W, 3)
    image *= 1 + lum[..., None]
    image += PIXEL_NOISE * rng.standard_normal((size, size, 1), dtype=np.float32)
    return image, region, stuff_of_region


def paint_clutter(image: np.ndarray, clutter: float, rng: np.random.Generator) -> None:
    """Distractor scribbles and blobs in stuff-like muted colours, painted into the background."""
    size = image.shape[0]
    for _ in range(rng.poisson(12 * clutter)):
        colour = STUFF_BASE[rng.integers(len(STUFF_BASE))] * rng.uniform(0.55, 1.5)
        if rng.random() < 0.7:  # a scribble: a polyline of 2-4 segments, 1 or 2 pixels thick
            start = rng.uniform(0, size, 2)
            points = start + np.cumsum(rng.normal(0, size * 0.12, (rng.integers(2, 5), 2)), axis=0)
            points = np.vstack([start, points])  # (P, 2) as (y, x)
            steps = np.diff(points, axis=0)  # (P-1, 2)
            t = np.linspace(0, 1, int(np.abs(steps).max()) + 2)  # (T,): dense enough for the longest segment
            line = (points[:-1, None, :] + t[None, :, None] * steps[:, None, :]).reshape(-1, 2).astype(np.int64)
            y, x = line[:, 0], line[:, 1]
            if rng.random() < 0.5:
                y, x = np.concatenate([y, y + 1]), np.concatenate([x, x])
            keep = (y >= 0) & (y < size) & (x >= 0) & (x < size)
            image[y[keep], x[keep]] = colour
        else:  # a small blob: an ellipse of radii 1.5-4 pixels
            ry, rx = rng.uniform(1.5, 4, 2)
            cy, cx = rng.uniform(0, size, 2)
            y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, size)
            x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, size)
            yy, xx = np.ogrid[y0:y1, x0:x1]
            inside = ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1
            image[y0:y1, x0:x1][inside] = colour


# -- things ---------------------------------------------------------------------------------


def thing_mask(kind: int, size: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A thing rasterised on its own window, cropped tight: mask bool [h, w] and shading float32 [h, w].

    Pixel centres are tested against the shape in its rotated frame (xr, yr). The window
    has the parity of ``size`` so that an unrotated square of size s covers exactly s x s.
    """
    m = int(np.ceil(size * 1.5)) + 2
    m += (m - size) % 2
    offsets = np.arange(m, dtype=np.float32) - (m - 1) / 2
    y, x = offsets[:, None], offsets[None, :]  # (m, 1), (1, m): broadcast to (m, m)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    xr, yr = x * cos + y * sin, y * cos - x * sin  # (m, m) each: the shape's own frame
    half = size / 2
    if kind == 0:  # circle
        mask = xr * xr + yr * yr <= half * half
    elif kind == 1:  # square: two slabs
        mask = (np.abs(xr) <= half) & (np.abs(yr) <= half)
    elif kind == 2:  # equilateral triangle of side `size`, apex up: three half-planes at the inradius
        inradius = size / (2 * np.sqrt(3))
        mask = np.ones((m, m), dtype=bool)
        for beta in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            mask &= xr * np.float32(np.cos(beta)) + yr * np.float32(np.sin(beta)) <= inradius
    elif kind == 3:  # five-pointed star: fold the polar angle onto the half-sector [0, pi/5]
        rho = np.hypot(xr, yr)
        t = np.mod(np.arctan2(yr, xr) + np.pi / 2, 2 * np.pi / 5)  # 0 at an outer tip (pointing up)
        u = np.minimum(t, 2 * np.pi / 5 - t)
        px, py = rho * np.cos(u), rho * np.sin(u)
        # inside iff on the origin's side of the edge from the tip (R, 0) to the inner corner
        dx, dy = STAR_INNER * half * np.cos(np.pi / 5) - half, STAR_INNER * half * np.sin(np.pi / 5)
        mask = dx * py - dy * (px - half) >= 0
    else:  # cross: the union of two rectangles, arms a third of the extent wide
        arm = size / 6
        ax, ay = np.abs(xr), np.abs(yr)
        mask = ((ax <= half) & (ay <= arm)) | ((ax <= arm) & (ay <= half))
    if not mask.any():  # a degenerate tiny shape keeps its centre pixel
        mask[m // 2, m // 2] = True
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    shading = 1 + 0.08 * (xr[crop] - yr[crop]) / max(half, 1)  # a slight light from the top right
    return mask[crop], shading


__all__ = [
    "PIXEL_NOISE",
    "STAR_INNER",
    "STUFF_BASE",
    "STUFF_CONTRAST",
    "draw_background",
    "paint_clutter",
    "thing_mask",
]
