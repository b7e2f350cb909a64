"""DetectNet_v2 augmentation (TAO's): one 3x3 spatial matrix for image and boxes, then colour jitter.

Spatial order as TAO composes it: horizontal/vertical flip -> rotation -> zoom -> translation, all about
the image centre, applied to the image with one ``cv2.warpAffine`` and to the boxes by mapping their four
corners (the new box is the corners' bounding rectangle, clipped to the image; boxes that end up smaller
than ``min_box_size`` are dropped). ``zoom`` > 1 renders the image smaller (zoom *out*), as in TAO.

Colour (on RGB in [0, 1]): hue rotation about the grey axis (degrees), saturation shift (blend with the
luma), contrast scaling about ``contrast_center``, brightness scaling. TAO's exact colour distributions
are not public; each is uniform in ``[-max, max]`` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges (TAO defaults). Pixel quantities refer to the network input size."""

    hflip_probability: float = 0.5
    vflip_probability: float = 0.0
    zoom_min: float = 1.0
    zoom_max: float = 1.0
    translate_max_x: float = 8.0
    translate_max_y: float = 8.0
    rotate_rad_max: float = 0.0
    hue_rotation_max: float = 25.0
    saturation_shift_max: float = 0.2
    contrast_scale_max: float = 0.1
    contrast_center: float = 0.5
    brightness_scale_max: float = 0.0
    min_box_size: float = 1.0

    def __post_init__(self) -> None:
        for name in ("hflip_probability", "vflip_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.zoom_min <= self.zoom_max:
            raise ValueError(f"need 0 < zoom_min <= zoom_max, got {self.zoom_min}, {self.zoom_max}")


def spatial_matrix(rng: np.random.Generator, config: AugmentConfig, width: int, height: int) -> np.ndarray:
    """(3, 3) homogeneous pixel transform drawn from ``config``: flip -> rotate -> zoom -> translate."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    to_centre = np.array([[1.0, 0, -cx], [0, 1.0, -cy], [0, 0, 1.0]])
    back = np.array([[1.0, 0, cx], [0, 1.0, cy], [0, 0, 1.0]])
    flip = np.diag([-1.0 if rng.random() < config.hflip_probability else 1.0,
                    -1.0 if rng.random() < config.vflip_probability else 1.0, 1.0])
    angle = rng.uniform(-config.rotate_rad_max, config.rotate_rad_max) if config.rotate_rad_max > 0 else 0.0
    c, s = math.cos(angle), math.sin(angle)
    rotate = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    zoom = rng.uniform(config.zoom_min, config.zoom_max)
    scale = np.diag([1.0 / zoom, 1.0 / zoom, 1.0])
    tx = float(rng.integers(-int(config.translate_max_x), int(config.translate_max_x) + 1))
    ty = float(rng.integers(-int(config.translate_max_y), int(config.translate_max_y) + 1))
    translate = np.array([[1.0, 0, tx], [0, 1.0, ty], [0, 0, 1.0]])
    return translate @ back @ scale @ rotate @ flip @ to_centre


def warp_image(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply the (3, 3) transform to an (H, W, 3) image (bilinear, black outside)."""
    import cv2  # noqa: PLC0415

    height, width = image.shape[:2]
    if np.allclose(matrix, np.eye(3)):
        return image
    return cv2.warpAffine(image, matrix[:2], (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray, width: int, height: int,
               min_size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Transform (M, 4) ``x1, y1, x2, y2`` boxes; returns the clipped boxes kept and their (M,) keep mask."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return boxes.copy(), np.zeros(0, dtype=bool)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x1, y2], 1),
                        np.stack([x2, y2], 1)], axis=1)  # (M, 4, 2)
    hom = np.concatenate([corners, np.ones((*corners.shape[:2], 1))], axis=2) @ matrix.T
    xy = hom[..., :2] / hom[..., 2:3]
    out = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0.0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0.0, height)
    keep = ((out[:, 2] - out[:, 0]) >= min_size) & ((out[:, 3] - out[:, 1]) >= min_size)
    return out[keep], keep


def colour_jitter(rng: np.random.Generator, image: np.ndarray, config: AugmentConfig) -> np.ndarray:
    """Colour augmentation of an (H, W, 3) float32 RGB image in [0, 1]; returns a new array in [0, 1]."""
    out = image
    if config.hue_rotation_max > 0:
        out = out @ hue_rotation(math.radians(rng.uniform(-config.hue_rotation_max, config.hue_rotation_max))).T
    if config.saturation_shift_max > 0:
        saturation = 1.0 + rng.uniform(-config.saturation_shift_max, config.saturation_shift_max)
        luma = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        out = luma[..., None] + saturation * (out - luma[..., None])
    if config.contrast_scale_max > 0:
        contrast = 1.0 + rng.uniform(-config.contrast_scale_max, config.contrast_scale_max)
        out = (out - config.contrast_center) * contrast + config.contrast_center
    if config.brightness_scale_max > 0:
        out = out * (1.0 + rng.uniform(-config.brightness_scale_max, config.brightness_scale_max))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def hue_rotation(angle: float) -> np.ndarray:
    """(3, 3) RGB matrix rotating hue by ``angle`` radians about the grey axis (keeps greys grey)."""
    c, s = math.cos(angle), math.sin(angle)
    k = 1.0 / 3.0
    r = math.sqrt(k)
    return np.array([
        [c + (1 - c) * k, k * (1 - c) - r * s, k * (1 - c) + r * s],
        [k * (1 - c) + r * s, c + k * (1 - c), k * (1 - c) - r * s],
        [k * (1 - c) - r * s, k * (1 - c) + r * s, c + k * (1 - c)],
    ], dtype=np.float32)
