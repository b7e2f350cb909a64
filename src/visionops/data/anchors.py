"""Sparse4D anchor priors: k-means over the training GT box centres, as TAO's converter makes them.

An anchor is 11 numbers ``[x, y, z, log w, log l, log h, sin(yaw), cos(yaw), vx, vy, vz]``: the k-means
centre (BEV frame of the group the box came from, metres), the log of the mean GT size over all training
boxes, yaw 0 (sin 0, cos 1) and zero velocity. Shape (N, 11), float32, saved as ``kmeans<N>.npy``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from visionops import atomic

ANCHOR_DIM = 11


def anchor_filename(num_anchor: int) -> str:
    return f"kmeans{num_anchor}.npy"


def kmeans_anchors(centres: np.ndarray, sizes: np.ndarray, num_anchor: int, *, seed: int = 0,
                   max_points: int = 200_000) -> tuple[np.ndarray, dict]:
    """Anchors (num_anchor, 11) float32 and a small report.

    Args:
        centres: (M, 3) GT box centres, metres.
        sizes: (M, 3) GT ``[w, l, h]``, metres.
        num_anchor: N.
        seed: k-means initialisation and sub-sampling seed.
        max_points: centres are randomly sub-sampled to this many first (k-means is O(M N)).

    With fewer distinct centres than N (a tiny dataset), every distinct centre becomes an anchor and the
    rest are copies of them jittered by 0.5 m; the report says how many (``padded``).
    """
    from sklearn.cluster import KMeans  # noqa: PLC0415

    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 3)
    if len(centres) == 0:
        raise ValueError("no training boxes to compute anchors from: the train split has no ground truth objects")
    if len(centres) != len(sizes):
        raise ValueError(f"centres {centres.shape} and sizes {sizes.shape} differ in length")
    if not (np.all(np.isfinite(centres)) and np.all(np.isfinite(sizes)) and np.all(sizes > 0)):
        raise ValueError("anchor input has non-finite centres or non-positive sizes")
    rng = np.random.default_rng(seed)
    if len(centres) > max_points:
        centres = centres[rng.choice(len(centres), max_points, replace=False)]
    distinct = np.unique(np.round(centres, 4), axis=0)
    padded = 0
    if len(distinct) <= num_anchor:
        padded = num_anchor - len(distinct)
        extra = distinct[rng.integers(0, len(distinct), padded)] + rng.normal(0.0, 0.5, (padded, 3))
        xyz = np.concatenate([distinct, extra])
        inertia = 0.0
    else:
        km = KMeans(n_clusters=num_anchor, n_init=1, random_state=seed, max_iter=300).fit(centres)
        # Sort so the file does not depend on the order k-means happened to emit clusters in.
        xyz = km.cluster_centers_[np.lexsort(km.cluster_centers_.T[::-1])]
        inertia = float(km.inertia_)
    anchors = np.zeros((num_anchor, ANCHOR_DIM), dtype=np.float32)
    anchors[:, :3] = xyz
    anchors[:, 3:6] = np.log(sizes.mean(axis=0))
    anchors[:, 7] = 1.0  # cos(0); sin and velocity stay 0
    if padded:
        warnings.warn(f"only {len(distinct)} distinct training box centres for {num_anchor} anchors: "
                      f"{padded} anchors are jittered copies (use more training data or fewer anchors)",
                      stacklevel=2)
    report = {"num_anchor": num_anchor, "points": int(len(centres)), "distinct_points": int(len(distinct)),
              "padded": int(padded), "inertia": inertia,
              "mean_size_wlh": [float(v) for v in sizes.mean(axis=0)]}
    return anchors, report


def write_anchors(folder: str | os.PathLike, anchors: np.ndarray) -> Path:
    """Save ``kmeans<N>.npy`` atomically (``np.save`` format, no pickle)."""
    import io  # noqa: PLC0415

    if anchors.ndim != 2 or anchors.shape[1] != ANCHOR_DIM:
        raise ValueError(f"anchors must be (N, {ANCHOR_DIM}), got {anchors.shape}")
    buffer = io.BytesIO()
    np.save(buffer, anchors, allow_pickle=False)
    return atomic.write_bytes(Path(folder) / anchor_filename(len(anchors)), buffer.getvalue())


def load_anchors(path: str | os.PathLike) -> np.ndarray:
    """(N, 11) float32 anchors; errors name the file when the shape is wrong."""
    arr = np.load(path, allow_pickle=False)
    if arr.ndim != 2 or arr.shape[1] != ANCHOR_DIM:
        raise ValueError(f"{path}: anchors must have shape (N, {ANCHOR_DIM}), got {arr.shape}")
    return arr.astype(np.float32)
