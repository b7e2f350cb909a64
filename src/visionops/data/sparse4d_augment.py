"""Sparse4D training augmentation: one image transform and one BEV transform per sequence, folded into
``projection_mat``.

Image (per camera, the same parameters for every camera): resize by ``base * scale`` where ``base`` makes the
stored frame cover the network input (aspect kept), crop to the input size (horizontal offset uniform over the
slack, vertical offset bottom-biased as BEVDet's ``bot_pct_lim``: a fraction ``bot_pct`` of the resized height
is cut from the bottom, the rest from the top), horizontal flip, rotation about the input centre. Together
they are one (3, 3) pixel affine ``A`` (stored pixels -> network-input pixels, pixel centres on integers).

BEV (3D, the whole scene about the BEV origin): ``T = F @ s @ Rz(angle)`` (rotation, isotropic scale, flips of
x and/or y), a (4, 4) matrix. GT boxes and velocities move with ``T``; the images do not change, so the camera
sees the transformed world through::

    projection = pad4(A) @ pad4(K) @ world_to_camera @ inv(T)      # (u*d, v*d, d, 1) convention

The image flip only changes ``A`` (boxes untouched); the BEV flips change boxes and ``projection`` together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ImageAugParams:
    """Dimensionless image parameters (apply to cameras of any stored size).

    Attributes:
        scale: resize factor relative to the size that just covers the input (1 = no zoom).
        crop_x: horizontal crop position in [0, 1] of the slack (0.5 = centred).
        bot_pct: fraction of the resized height cut from the bottom (0 = keep the bottom).
        flip: mirror horizontally.
        rotate_deg: rotation about the input centre, degrees (counter-clockwise on screen).
    """

    scale: float = 1.0
    crop_x: float = 0.5
    bot_pct: float = 0.0
    flip: bool = False
    rotate_deg: float = 0.0


@dataclass(frozen=True)
class BevAugParams:
    """BEV parameters: yaw ``angle`` (rad) about z through the BEV origin, isotropic ``scale``, flips."""

    angle: float = 0.0
    scale: float = 1.0
    flip_x: bool = False
    flip_y: bool = False


@dataclass(frozen=True)
class AugParams:
    """One draw of :class:`Sparse4DAugment`; the default instance is the identity (evaluation)."""

    image: ImageAugParams = ImageAugParams()
    bev: BevAugParams = BevAugParams()


@dataclass(frozen=True)
class Sparse4DAugment:
    """Augmentation ranges; every range is uniform. Defaults are mild (the synthetic warehouse is small).

    Attributes:
        resize_lim: (min, max) of :attr:`ImageAugParams.scale`.
        bot_pct_lim: (min, max) of the bottom-cut fraction.
        flip_prob: probability of a horizontal image flip.
        rotate_deg: image rotation drawn from [-rotate_deg, rotate_deg] (official Sparse4D: 5.4).
        bev_rot_rad: scene yaw drawn from [-bev_rot_rad, bev_rot_rad] (official: 0.3925).
        bev_scale_lim: (min, max) scene scale.
        bev_flip_x_prob, bev_flip_y_prob: probabilities of mirroring the scene's x / y axis.
    """

    resize_lim: tuple[float, float] = (0.95, 1.1)
    bot_pct_lim: tuple[float, float] = (0.0, 0.05)
    flip_prob: float = 0.5
    rotate_deg: float = 0.0
    bev_rot_rad: float = 0.3925
    bev_scale_lim: tuple[float, float] = (0.95, 1.05)
    bev_flip_x_prob: float = 0.5
    bev_flip_y_prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ("flip_prob", "bev_flip_x_prob", "bev_flip_y_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Sparse4DAugment.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("resize_lim", "bev_scale_lim"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"Sparse4DAugment.{name} must be (min, max) with 0 < min <= max, got {(lo, hi)}")
        lo, hi = self.bot_pct_lim
        if not 0.0 <= lo <= hi < 1.0:
            raise ValueError(f"Sparse4DAugment.bot_pct_lim must satisfy 0 <= min <= max < 1, got {(lo, hi)}")
        if self.rotate_deg < 0 or self.bev_rot_rad < 0:
            raise ValueError("Sparse4DAugment.rotate_deg and bev_rot_rad are half-widths and must be >= 0")

    def sample(self, rng: np.random.Generator) -> AugParams:
        """One parameter draw; the number and order of draws is fixed so a seed always gives the same result."""
        u = rng.random(10)
        image = ImageAugParams(
            scale=_lerp(self.resize_lim, u[0]),
            crop_x=float(u[1]),
            bot_pct=_lerp(self.bot_pct_lim, u[2]),
            flip=bool(u[3] < self.flip_prob),
            rotate_deg=self.rotate_deg * (2 * float(u[4]) - 1),
        )
        bev = BevAugParams(
            angle=self.bev_rot_rad * (2 * float(u[5]) - 1),
            scale=_lerp(self.bev_scale_lim, u[6]),
            flip_x=bool(u[7] < self.bev_flip_x_prob),
            flip_y=bool(u[8] < self.bev_flip_y_prob),
        )
        return AugParams(image, bev)


def _lerp(lim: tuple[float, float], u: float) -> float:
    return float(lim[0] + (lim[1] - lim[0]) * u)


# --------------------------------------------------------------------------------------------------
# image
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageTransform:
    """How one stored frame becomes the network input.

    Attributes:
        resized: (width, height) the frame is first resized to (integer pixels).
        post: (3, 3) affine from resized pixels to input pixels (crop, flip, rotation).
        matrix: (3, 3) affine from stored pixels to input pixels (``post @ resize``); fold into K.
        output: (width, height) of the network input.
        focal_scale: how much the resize scales focal lengths (flip and rotation do not change them).
    """

    resized: tuple[int, int]
    post: np.ndarray
    matrix: np.ndarray
    output: tuple[int, int]
    focal_scale: float


def image_transform(params: ImageAugParams, src_size: tuple[int, int], dst_size: tuple[int, int]) -> ImageTransform:
    """The transform of ``params`` for frames stored at ``src_size`` and an input of ``dst_size`` ((W, H) each)."""
    (w0, h0), (w, h) = src_size, dst_size
    base = max(w / w0, h / h0)  # cover the input; the other axis is cropped
    rw, rh = max(1, round(w0 * base * params.scale)), max(1, round(h0 * base * params.scale))
    sx, sy = rw / w0, rh / h0  # the integer size's exact factors
    # Area mapping with pixel centres on integers, as ovpkl.scale_intrinsic: u' = (u + 0.5) s - 0.5.
    resize = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    # Negative slack (resized smaller than the input) centres-ish the frame and pads; int() keeps the crop
    # an integer shift so that warpAffine copies pixels without resampling.
    crop_x = int(math.floor(params.crop_x * (rw - w))) if rw >= w else -((w - rw) // 2)
    crop_y = int((1.0 - params.bot_pct) * rh) - h
    crop_y = min(max(crop_y, 0), rh - h) if rh >= h else -((h - rh) // 2)
    post = np.array([[1.0, 0.0, -crop_x], [0.0, 1.0, -crop_y], [0.0, 0.0, 1.0]])
    if params.flip:
        post = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ post
    if params.rotate_deg:
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        # Counter-clockwise on screen = negative angle in image axes (y points down).
        a = math.radians(params.rotate_deg)
        c, s = math.cos(a), math.sin(a)
        rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
        centre = np.array([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
        post = centre @ rot @ np.linalg.inv(centre) @ post
    return ImageTransform((rw, rh), post, post @ resize, (w, h), float(sx))


def warp_image(image: np.ndarray, transform: ImageTransform, *, nearest: bool = False) -> np.ndarray:
    """Apply ``transform`` to an (H0, W0[, C]) array; outside the frame is 0.

    ``nearest`` for depth: z-depth does not change with scale, and blending across an object's edge would
    invent depths that exist nowhere. Images are resized with INTER_AREA when shrinking (no aliasing).
    """
    h0, w0 = image.shape[:2]
    if (w0, h0) != transform.resized:
        shrink = transform.resized[0] < w0
        interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        image = cv2.resize(image, transform.resized, interpolation=interp)
    if np.allclose(transform.post, np.eye(3)) and transform.resized == transform.output:
        return image
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, transform.post[:2], transform.output, flags=interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# --------------------------------------------------------------------------------------------------
# BEV
# --------------------------------------------------------------------------------------------------


def bev_matrix(params: BevAugParams) -> np.ndarray:
    """(4, 4) ``T = F @ s @ Rz(angle)``: original BEV frame -> augmented BEV frame (metres)."""
    c, s = math.cos(params.angle), math.sin(params.angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    flip = np.diag([-1.0 if params.flip_x else 1.0, -1.0 if params.flip_y else 1.0, 1.0])
    out = np.eye(4)
    out[:3, :3] = flip @ (params.scale * rot)
    return out


def transform_boxes(boxes: np.ndarray, velocity: np.ndarray, params: BevAugParams) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 7) ``[x, y, z, w, l, h, yaw]`` and velocities (N, 3) m/s in the augmented BEV frame.

    Centres and velocities are multiplied by ``T``; sizes by the scale; yaw turns by ``angle`` and is mirrored
    by the flips (x flip: ``pi - yaw``, y flip: ``-yaw``), which keeps the box's corner set equal to the
    transformed corners (the box is symmetric under its own axis flips). Yaw is wrapped to [-pi, pi).
    """
    boxes = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 7)
    velocity = np.asarray(velocity, dtype=np.float64).reshape(-1, 3)
    linear = bev_matrix(params)[:3, :3]
    boxes[:, :3] = boxes[:, :3] @ linear.T
    boxes[:, 3:6] *= params.scale
    yaw = boxes[:, 6] + params.angle
    if params.flip_x:
        yaw = math.pi - yaw
    if params.flip_y:
        yaw = -yaw
    boxes[:, 6] = (yaw + math.pi) % (2 * math.pi) - math.pi
    return boxes, velocity @ linear.T


def projection_matrix(intrinsic: np.ndarray, world_to_camera: np.ndarray, image_matrix: np.ndarray | None = None,
                      bev: np.ndarray | None = None) -> np.ndarray:
    """(4, 4) augmented BEV -> input pixels: ``pad4(A) @ pad4(K) @ world_to_camera @ inv(T)``.

    Args:
        intrinsic: (3, 3) K of the stored frames.
        world_to_camera: (4, 4) OVPKL ``sensor2world_transform`` (BEV frame -> camera).
        image_matrix: (3, 3) :attr:`ImageTransform.matrix`; None = identity.
        bev: (4, 4) :func:`bev_matrix`; None = identity.
    """
    k = np.eye(4)
    k[:3, :3] = intrinsic if image_matrix is None else image_matrix @ intrinsic
    out = k @ np.asarray(world_to_camera, dtype=np.float64)
    return out if bev is None else out @ np.linalg.inv(bev)


def project(projection: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) metres through a (4, 4) projection -> ((N, 2) pixels, (N,) depth in metres)."""
    hom = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ projection.T
    depth = hom[:, 2]
    return hom[:, :2] / np.where(np.abs(depth) < 1e-9, 1e-9, depth)[:, None], depth
