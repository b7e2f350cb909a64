"""Colours: procedural textures, lighting, tone mapping and sensor noise.

Everything is computed in *linear* RGB (0..1 albedo times irradiance) and converted once per pixel to
8-bit sRGB with a lookup table that also applies the camera's exposure and white balance. Textures are
functions of world (or object-frame) coordinates, so the same floor tile looks the same from every
camera. Thin lines (slab joints, lanes, wall ribs) are drawn with analytic coverage against the
pixel's footprint on the surface, which keeps them from aliasing into moire in the distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionops.data.synthetic.classes import (
    PATTERN_BAND,
    PATTERN_CHECKER,
    PATTERN_HAZARD,
    PATTERN_HBANDS,
)
from visionops.data.synthetic.layout import Layout

LUT_SIZE = 4096


@dataclass
class Lighting:
    """Scene lighting.

    Attributes:
        direction: (3,) unit vector towards the (distant, overhead) key light, world frame.
        ambient: hemispherical ambient strength (surfaces facing up get all of it, down 60 %).
        diffuse: strength of the key light (Lambert).
        fill: strength of a weak light from the camera, which separates faces turned away from the key.
        lamp_gain: how much brighter the floor is right under a ceiling lamp than between lamps.
        lamp_sigma: radius (m) of a lamp's pool of light.
    """

    direction: np.ndarray
    ambient: float = 0.5
    diffuse: float = 0.55
    fill: float = 0.18
    lamp_gain: float = 0.45
    lamp_sigma: float = 2.6

    @classmethod
    def random(cls, rng: np.random.Generator) -> Lighting:
        azimuth = rng.uniform(0, 2 * np.pi)
        elevation = np.radians(rng.uniform(50, 75))
        d = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation),
                      np.sin(elevation)])
        return cls(direction=d, ambient=float(rng.uniform(0.42, 0.55)), diffuse=float(rng.uniform(0.45, 0.6)),
                   lamp_gain=float(rng.uniform(0.3, 0.6)))


# --------------------------------------------------------------------------------------------------
# noise and line primitives
# --------------------------------------------------------------------------------------------------


def _hash2(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) for integer lattice points (any shape)."""
    h = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663) ^ (seed * 83492791)
    h = h.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h.astype(np.float32) / np.float32(2**32)


def value_noise(x: np.ndarray, y: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth 2D value noise in [0, 1) with features of about ``cell`` metres; x, y any shape."""
    gx, gy = x / cell, y / cell
    ix, iy = np.floor(gx), np.floor(gy)
    fx, fy = gx - ix, gy - iy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)  # smoothstep: C1 across cells
    a, b = _hash2(ix, iy, seed), _hash2(ix + 1, iy, seed)
    c, d = _hash2(ix, iy + 1, seed), _hash2(ix + 1, iy + 1, seed)
    return (a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy).astype(np.float32)


def line_coverage(distance: np.ndarray, half_width: float, footprint: np.ndarray) -> np.ndarray:
    """Fraction of a pixel covered by a line of ``half_width`` metres at ``distance`` from its centre.

    A box-filter approximation: full inside the line, a linear ramp one footprint wide at its edges,
    and never more than line width / footprint (a thin line far away fades instead of flickering).
    """
    fp = np.maximum(footprint, 1e-4)
    edge = np.clip(0.5 + (half_width - distance) / fp, 0.0, 1.0)
    return edge * np.minimum(1.0, 2.0 * half_width / fp)


def lamp_irradiance(x: np.ndarray, y: np.ndarray, layout: Layout, lighting: Lighting) -> np.ndarray:
    """Relative irradiance (about 1) from the ceiling lamps' pools of light at floor points (x, y)."""
    acc = np.zeros(np.shape(x), dtype=np.float32)
    inv = np.float32(-0.5 / lighting.lamp_sigma**2)
    for lx, ly in layout.lamps:
        acc += np.exp(((x - lx) ** 2 + (y - ly) ** 2) * inv)
    return (1.0 - 0.5 * lighting.lamp_gain + lighting.lamp_gain * np.minimum(acc, 1.5)).astype(np.float32)


def rect_distance(x: np.ndarray, y: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """Distance (m) from points to the nearest of ``rects`` (K, 4) ``[xmin, ymin, xmax, ymax]``."""
    out = np.full(np.shape(x), np.inf, dtype=np.float32)
    for xmin, ymin, xmax, ymax in rects:
        dx = np.maximum(np.maximum(xmin - x, x - xmax), 0.0)
        dy = np.maximum(np.maximum(ymin - y, y - ymax), 0.0)
        out = np.minimum(out, np.sqrt(dx * dx + dy * dy))
    return out


# --------------------------------------------------------------------------------------------------
# surfaces of the room
# --------------------------------------------------------------------------------------------------


def floor_albedo(x: np.ndarray, y: np.ndarray, footprint: np.ndarray, layout: Layout, seed: int
                 ) -> np.ndarray:
    """(N, 3) linear albedo of the concrete floor at points (N,): stains, slab joints, painted lanes."""
    stains = value_noise(x, y, 2.7, seed) * 0.6 + value_noise(x, y, 0.7, seed + 1) * 0.4
    base = layout.floor_colour.astype(np.float32)[None] * (0.78 + 0.4 * stains)[:, None]
    # Saw-cut joints every `slab` metres, measured from the floor corner.
    sx = np.mod(x - layout.floor_min[0], layout.slab)
    sy = np.mod(y - layout.floor_min[1], layout.slab)
    d = np.minimum(np.minimum(sx, layout.slab - sx), np.minimum(sy, layout.slab - sy))
    base *= (1.0 - 0.45 * line_coverage(d, 0.008, footprint))[:, None]
    # Painted lanes, worn in patches.
    wear = value_noise(x, y, 0.4, seed + 2)
    for (xmin, ymin, xmax, ymax), colour in zip(layout.lanes, layout.lane_colours, strict=True):
        inside = np.minimum(np.minimum(x - xmin, xmax - x), np.minimum(y - ymin, ymax - y))
        near = inside > -0.2
        if not np.any(near):
            continue
        fp = footprint[near]
        cov = np.clip(0.5 + inside[near] / np.maximum(fp, 1e-4), 0, 1)
        cov *= np.minimum(1.0, (min(xmax - xmin, ymax - ymin)) / np.maximum(fp, 1e-4))
        cov *= 0.75 + 0.25 * wear[near]
        paint = colour.astype(np.float32)[None] * (0.9 + 0.2 * stains[near])[:, None]
        base[near] += (paint - base[near]) * cov[:, None]
    # Darker where the floor meets racks and walls (ambient occlusion).
    if len(layout.obstacles):
        base *= (1.0 - 0.4 * np.exp(-rect_distance(x, y, layout.obstacles) / 0.3))[:, None]
    wall_d = np.minimum(np.minimum(x - layout.floor_min[0], layout.floor_max[0] - x),
                        np.minimum(y - layout.floor_min[1], layout.floor_max[1] - y))
    base *= (1.0 - 0.3 * np.exp(-np.maximum(wall_d, 0) / 0.4))[:, None]
    return base


def wall_albedo(s: np.ndarray, z: np.ndarray, footprint: np.ndarray, layout: Layout, seed: int) -> np.ndarray:
    """(N, 3) linear albedo of a wall at (along-wall coordinate s, height z): painted band, ribbed panels."""
    dirt = value_noise(s, z, 1.3, seed + 5)
    out = np.where((z < layout.band_height)[:, None], layout.band_colour[None], layout.wall_colour[None])
    out = out.astype(np.float32) * (0.85 + 0.25 * dirt)[:, None]
    # Vertical ribs of the cladding every 0.3 m, faded out where a pixel covers several ribs.
    rib = np.abs(np.mod(s, 0.3) - 0.15)
    out *= (1.0 - 0.25 * line_coverage(rib, 0.03, footprint) * (z >= layout.band_height))[:, None]
    panel = np.abs(np.mod(z - layout.band_height, 2.5) - 1.25)
    out *= (1.0 - 0.4 * line_coverage(1.25 - panel, 0.02, footprint))[:, None]
    return out


# --------------------------------------------------------------------------------------------------
# objects and static boxes
# --------------------------------------------------------------------------------------------------


def pattern_weight(p: np.ndarray, lo: np.ndarray, hi: np.ndarray, pattern: np.ndarray, args: np.ndarray
                   ) -> np.ndarray:
    """(N,) blend weight from a part's colour to its second colour at local hit points.

    Args:
        p: (N, 3) hit points in the part's frame, metres; lo, hi: (N, 3) bounds of the part hit.
        pattern: (N,) PATTERN_* ids; args: (N, 2) their parameters.
    """
    beta = np.zeros(len(p), dtype=np.float32)
    for pid in np.unique(pattern):
        sel = pattern == pid
        a, b = args[sel, 0], args[sel, 1]
        q = p[sel]
        if pid == PATTERN_HBANDS:
            beta[sel] = (np.mod(q[:, 2] - lo[sel, 2], a) < a * b).astype(np.float32)
        elif pid == PATTERN_HAZARD:
            beta[sel] = (np.mod(q[:, 0] + q[:, 1] + q[:, 2], a) < a * 0.5).astype(np.float32)
        elif pid == PATTERN_BAND:
            rel = (q[:, 2] - lo[sel, 2]) / np.maximum(hi[sel, 2] - lo[sel, 2], 1e-6)
            beta[sel] = ((rel >= a) & (rel <= b)).astype(np.float32)
        elif pid == PATTERN_CHECKER:
            cells = np.floor(q / a[:, None]).sum(axis=1)
            beta[sel] = 0.5 * np.mod(cells, 2.0).astype(np.float32)
    return beta


def shade(albedo: np.ndarray, normals: np.ndarray, view: np.ndarray, light_dir: np.ndarray,
          lighting: Lighting, irradiance: np.ndarray | float) -> np.ndarray:
    """(N, 3) linear radiance of Lambertian surfaces.

    Args:
        albedo: (N, 3); normals: (N, 3) unit; view: (N, 3) ray directions (any length);
        light_dir: (3,) unit vector to the key light in the same frame as ``normals``;
        irradiance: (N,) or scalar lamp factor.
    """
    ndotl = np.maximum(normals @ light_dir.astype(np.float32), 0.0)
    vnorm = np.sqrt(np.einsum("ij,ij->i", view, view))
    facing = np.maximum(-np.einsum("ij,ij->i", normals, view) / vnorm, 0.0)
    light = (lighting.ambient * (0.8 + 0.2 * normals[:, 2]) + lighting.diffuse * ndotl
             + lighting.fill * facing)
    return albedo * (light * irradiance)[:, None]


# --------------------------------------------------------------------------------------------------
# camera response
# --------------------------------------------------------------------------------------------------


def srgb_lut(size: int = LUT_SIZE) -> np.ndarray:
    """(size,) uint8: linear value i / (size - 1) -> 8-bit sRGB (with a gentle highlight shoulder)."""
    v = np.linspace(0.0, 1.0, size)
    v = v * 1.08 / (1.0 + 0.08 * v)  # soft shoulder, 1 -> 1
    return np.round(255.0 * np.clip(v, 0, 1) ** (1 / 2.2)).astype(np.uint8)


def to_srgb_u8(radiance: np.ndarray, gains: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(..., 3) linear radiance times per-channel ``gains`` (3,) -> (..., 3) uint8 through ``lut``."""
    scale = np.asarray(gains, dtype=np.float32) * np.float32(len(lut) - 1)
    q = np.clip(radiance * scale + 0.5, 0, len(lut) - 1).astype(np.int32)
    return lut[q]


def noise_bank(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """(count, H, W, 3) int8 sensor noise frames, standard deviation about 2.1 levels per channel.

    Luminance noise (shared by the channels) is the sum of two uniform integers in [-2, 2] (sigma 2),
    chroma noise a uniform integer in [-1, 1] per channel (sigma 0.8): integer draws are ~10x faster than
    Gaussian ones and look the same after H.264.
    """
    luma = rng.integers(-2, 3, size=(count, height, width, 1), dtype=np.int8)
    luma += rng.integers(-2, 3, size=(count, height, width, 1), dtype=np.int8)
    return luma + rng.integers(-1, 2, size=(count, height, width, 3), dtype=np.int8)


def add_noise(rgb: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) plus int8 noise of the same shape, saturated."""
    return np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def vignette(width: int, height: int, strength: float) -> np.ndarray:
    """(H, W) float32 radial fall-off, 1 at the centre and ``1 - strength`` at the corners."""
    u = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / (width / 2)
    v = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / (width / 2)
    r2 = u[None, :] ** 2 + v[:, None] ** 2
    r2_max = 1.0 + ((height - 1) / width) ** 2
    return (1.0 - strength * r2 / r2_max).astype(np.float32)
