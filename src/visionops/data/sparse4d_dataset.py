"""Sparse4D training/evaluation samples over OVPKL infos and HDF5 frame stores, and their collate.

One sample = one frame of one (scene, BEV group) with every camera of the group. Augmentation is a property of
a *sequence*: ``dataset[(index, aug_seed)]`` draws :class:`~visionops.data.sparse4d_augment.AugParams` from
``numpy.random.default_rng(aug_seed)``, so every frame a batch slot plays with the same seed is augmented the
same way (:class:`~visionops.data.sequence_sampler.SequenceBatchSampler` gives one seed per sequence). A bare
``dataset[index]`` is not augmented: a per-frame random draw would make consecutive frames disagree, which is
worse for the temporal model than no augmentation.

Checks at construction (errors name the OVPKL file, frame and camera): every frame of a file has the same
cameras (the converter writes all group cameras for every frame, so a missing camera means a damaged file; it
is an error rather than a silently dropped frame, which would leave a hole in the sequence), calibration is
finite, every referenced frame store exists under ``data_root`` and holds the frame.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from visionops.data.frame_store import FrameStore
from visionops.data.ovpkl import load_ovpkl
from visionops.data.sparse4d_augment import (
    AugParams,
    ImageAugParams,
    ImageTransform,
    Sparse4DAugment,
    bev_matrix,
    image_transform,
    projection_matrix,
    transform_boxes,
    warp_image,
)
from visionops.models.sparse4d.box_state import encode_gt

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
"""RGB in [0, 1] -> (x - mean) / std (torchvision's ImageNet statistics, the backbones' pretraining); training
and inference (:mod:`visionops.inference.frames`) share them."""


def camera_input(rgb: np.ndarray, intrinsic: np.ndarray, world_to_camera: np.ndarray, input_size: tuple[int, int],
                 image_params: ImageAugParams | None = None, bev: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, float, ImageTransform]:
    """One camera's network input, the same for training and inference.

    Args:
        rgb: (h, w, 3) uint8 frame; ``intrinsic`` (3, 3) K of that frame's pixels; ``world_to_camera`` (4, 4).
        input_size: (W, H) network input; the frame is resized to cover it (aspect kept) and cropped.
        image_params / bev: augmentation (identity by default, as at inference); bev (4, 4) scene transform.

    Returns:
        image (3, H, W) float32 ImageNet-normalised, projection (4, 4) BEV -> input pixels, fx (px) of the
        input, and the image transform (to warp matching maps such as depth).
    """
    transform = image_transform(image_params or ImageAugParams(), (rgb.shape[1], rgb.shape[0]), input_size)
    image = warp_image(rgb, transform).astype(np.float32) / 255.0
    image = np.ascontiguousarray(((image - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    k = np.asarray(intrinsic, dtype=np.float64)
    projection = projection_matrix(k, world_to_camera, transform.matrix, bev)
    return image, projection, float(k[0, 0] * transform.focal_scale), transform


class Sparse4DDataset(Dataset):
    """Frames of OVPKL files with all cameras of their BEV group.

    Args:
        ovpkl_paths: OVPKL files, or folders whose ``*.pkl`` are used.
        data_root: what the frame-store paths in ``data_path`` are relative to (the convert stage's root,
            i.e. the folder holding ``data/``); absolute paths are used as they are.
        classes: GT class names; label = position in this list; other objects are dropped.
        input_size: (W, H) network input in pixels.
        augment: ranges for training; None = no augmentation.
        with_depth: load depth maps (``gt_depth``); forced off with a warning when a frame store has none.

    Attributes:
        sequences: per OVPKL file, the dataset indices of its frames in time order.
        cameras: per OVPKL file, its camera ids in sample order (the first frame's order).
        files: the OVPKL paths, in the order of ``sequences``.
    """

    def __init__(self, ovpkl_paths: Sequence[str | os.PathLike] | str | os.PathLike, data_root: str | os.PathLike,
                 classes: Sequence[str], input_size: tuple[int, int], augment: Sparse4DAugment | None = None,
                 with_depth: bool = False) -> None:
        self.data_root = Path(data_root)
        self.classes = list(classes)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment = augment
        self.files = _expand(ovpkl_paths)
        self._infos: list[dict[str, Any]] = []
        self._file_of: list[int] = []
        self.metadata: list[dict[str, Any]] = []
        self.sequences: list[list[int]] = []
        self.cameras: list[list[str]] = []
        self._stores: dict[str, FrameStore] = {}
        store_frames: dict[str, set[int]] = {}
        depth_ok = True
        for f, file in enumerate(self.files):
            data = load_ovpkl(file)
            infos = sorted(data["infos"], key=lambda info: float(info["timestamp"]))
            self.metadata.append(data["metadata"])
            self.cameras.append(list(infos[0]["cams"]) if infos else [])
            start = len(self._infos)
            for info in infos:
                depth_ok &= self._check_info(file, info, infos[0], store_frames)
            self._infos.extend(infos)
            self._file_of.extend([f] * len(infos))
            self.sequences.append(list(range(start, len(self._infos))))
        self.with_depth = bool(with_depth and depth_ok)
        if with_depth and not depth_ok:
            warnings.warn("Sparse4DDataset: some frame stores have no depth maps; gt_depth is None for every "
                          "sample (convert with convert.depth=true to train the depth head)", stacklevel=2)
        for store in self._stores.values():
            store.close()  # reopened lazily (also in each DataLoader worker)

    # ---------------------------------------------------------------------------------------------- checks

    def _check_info(self, file: Path, info: dict, first: dict, store_frames: dict[str, set[int]]) -> bool:
        """Validate one info; returns whether all its stores have depth."""
        where = f"{file}: frame {info['frame_idx']}"
        cams, expected = list(info["cams"]), list(first["cams"])
        if not cams:
            raise ValueError(f"{where} has no cameras")
        if sorted(cams) != sorted(expected):
            raise ValueError(f"{where} has cameras {sorted(cams)} but frame {first['frame_idx']} has "
                             f"{sorted(expected)}; every frame of a BEV group must have the same cameras "
                             "(re-run the convert stage)")
        depth = True
        for cam, entry in info["cams"].items():
            k = np.asarray(entry["cam_intrinsic"], dtype=np.float64)
            t = np.asarray(entry["sensor2world_transform"], dtype=np.float64)
            if k.shape != (3, 3) or t.shape != (4, 4):
                raise ValueError(f"{where}, camera {cam}: cam_intrinsic must be (3, 3) and sensor2world_transform "
                                 f"(4, 4), got {k.shape} and {t.shape}")
            if not (np.isfinite(k).all() and np.isfinite(t).all()):
                raise ValueError(f"{where}, camera {cam}: non-finite calibration (NaN/inf in cam_intrinsic or "
                                 "sensor2world_transform)")
            h5, key = entry["data_path"]
            store = self._store(h5, file)
            if h5 not in store_frames:
                store_frames[h5] = set(store.frames)
            if int(info["frame_idx"]) not in store_frames[h5]:
                raise ValueError(f"{where}, camera {cam}: frame store {store.path} has no {key!r}")
            depth &= store.has_depth
        return depth

    def _store(self, h5: str, file: Path | None = None) -> FrameStore:
        store = self._stores.get(h5)
        if store is None:
            path = Path(h5) if Path(h5).is_absolute() else self.data_root / h5
            if not path.is_file():
                raise FileNotFoundError(f"{file}: frame store {h5!r} not found under data root {self.data_root} "
                                        f"(looked for {path}); pass the convert stage's root as data_root")
            store = self._stores[h5] = FrameStore(path)
        return store

    # ---------------------------------------------------------------------------------------------- items

    def __len__(self) -> int:
        return len(self._infos)

    def info(self, index: int) -> dict[str, Any]:
        """The raw OVPKL info of sample ``index``."""
        return self._infos[index]

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """One frame: images (K, 3, H, W) float32 normalised, projection_mat (K, 4, 4), image_wh (K, 2),
        focal (K,), timestamp (s), scene_id, gt_boxes (M, 11), gt_labels (M,), gt_ids (M,), gt_visibility
        (M, K) (-1 = unknown: the GT has no full 2D box), gt_depth (K, H, W) metres or None, cameras, meta.
        See :func:`collate_sparse4d`."""
        index, seed = (item, None) if isinstance(item, (int, np.integer)) else (int(item[0]), int(item[1]))
        if not -len(self) <= index < len(self):
            raise IndexError(f"Sparse4DDataset: index {index} out of range for {len(self)} samples")
        info = self._infos[index]
        params = AugParams()
        if seed is not None and self.augment is not None:
            params = self.augment.sample(np.random.default_rng(seed))
        bev = bev_matrix(params.bev)
        cameras = self.cameras[self._file_of[index]]  # one order per group: visibility columns stay aligned
        w, h = self.input_size
        images = np.empty((len(cameras), 3, h, w), dtype=np.float32)
        depth = np.zeros((len(cameras), h, w), dtype=np.float32) if self.with_depth else None
        projection = np.empty((len(cameras), 4, 4), dtype=np.float32)
        focal = np.empty(len(cameras), dtype=np.float32)
        frame = int(info["frame_idx"])  # the store keys of data_path / depth_map_path are this frame's
        for c, cam in enumerate(cameras):
            entry = info["cams"][cam]
            rgb = self._store(entry["data_path"][0]).rgb(frame)
            images[c], projection[c], focal[c], transform = camera_input(
                rgb, entry["cam_intrinsic"], entry["sensor2world_transform"], self.input_size, params.image, bev)
            if depth is not None:
                mm = self._store(entry.get("depth_map_path", entry["data_path"])[0]).depth_mm(frame)
                depth[c] = warp_image(mm, transform, nearest=True).astype(np.float32) / 1000.0
        boxes, labels, ids, visibility = self._targets(info, cameras, params)
        scene = str(info["scene_name"])
        meta = {"scene_name": scene, "frame_idx": int(info["frame_idx"]), "token": str(info["token"]),
                "bev_origin": np.asarray(self.metadata[self._file_of[index]].get("bev_origin", [0.0] * 3),
                                         dtype=np.float64)}
        return {
            "images": torch.from_numpy(images),
            "projection_mat": torch.from_numpy(projection),
            "image_wh": torch.tensor([[w, h]] * len(cameras), dtype=torch.float32),
            "focal": torch.from_numpy(focal),
            "timestamp": float(info["timestamp"]),
            "scene_id": scene if seed is None else f"{scene}#{seed}",
            "gt_boxes": boxes,
            "gt_labels": labels,
            "gt_ids": ids,
            "gt_visibility": visibility,
            "gt_depth": None if depth is None else torch.from_numpy(depth),
            "cameras": cameras,
            "meta": meta,
        }

    def _targets(self, info: dict, cameras: list[str], params: AugParams):
        """GT of kept objects (class in ``classes`` and ``valid_flag``) in the augmented BEV frame."""
        names = np.asarray(info.get("gt_names", np.zeros(0, dtype=str))).astype(str)
        n = len(names)
        label_of = {name: i for i, name in enumerate(self.classes)}
        labels = np.array([label_of.get(name, -1) for name in names], dtype=np.int64)
        keep = labels >= 0
        valid = info.get("valid_flag")
        if valid is not None:
            keep &= np.asarray(valid, dtype=bool)
        boxes = np.asarray(info.get("gt_boxes", np.zeros((0, 7))), dtype=np.float64)
        boxes = (boxes.reshape(0, 7) if boxes.size == 0 else boxes[:, :7])[keep]
        velocity = np.asarray(info.get("gt_velocity", np.zeros((n, 3))), dtype=np.float64).reshape(n, 3)[keep]
        # asset_inds is unique over the dataset (instance_inds only per class); older files may lack it.
        ids = np.asarray(info.get("asset_inds", info.get("instance_inds", np.arange(n))), dtype=np.int64)[keep]
        vis_dicts = [v for v, k in zip(info.get("gt_visibility", [{}] * n), keep, strict=True) if k]
        visibility = np.array([[float(v.get(c, 0.0)) for c in cameras] for v in vis_dicts],
                              dtype=np.float32).reshape(-1, len(cameras))
        boxes, velocity = transform_boxes(boxes, velocity, params.bev)
        encoded = encode_gt(torch.from_numpy(boxes).float(), torch.from_numpy(velocity).float())
        return encoded, torch.from_numpy(labels[keep]), torch.from_numpy(ids), torch.from_numpy(visibility)


def _expand(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.pkl"))
            if not found:
                raise FileNotFoundError(f"{p}: no *.pkl OVPKL files (run `dvc repro convert`)")
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise ValueError("Sparse4DDataset: no OVPKL files given")
    return files


def collate_sparse4d(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Samples of :class:`Sparse4DDataset` -> the batch the Sparse4D LightningModule consumes.

    Returns:
        images (B, K, 3, H, W) float32; projection_mat (B, K, 4, 4) float32 (augmented BEV -> input pixels,
        (u*d, v*d, d, 1)); image_wh (B, K, 2) float32 [W, H]; focal (B, K) float32 px; timestamp (B,) float64 s;
        scene_ids list[str] (changes whenever a slot starts a new sequence); gt_boxes list of (M_b, 11)
        float32; gt_labels / gt_ids list of (M_b,) int64; gt_visibility list of (M_b, K) float32 (-1 =
        unknown); gt_depth (B, K, H, W) float32 metres (0 = none) or None; cameras list of lists; meta list
        of dicts {scene_name, frame_idx, token, bev_origin (3,)}.

    Raises:
        ValueError: samples with different camera counts (a batch needs one K).
    """
    if not samples:
        raise ValueError("collate_sparse4d: empty batch")
    counts = [len(s["cameras"]) for s in samples]
    if len(set(counts)) > 1:
        scenes = [s["meta"]["scene_name"] for s in samples]
        raise ValueError(f"collate_sparse4d: samples have different camera counts {counts} (scenes {scenes}); "
                         "a batch needs one count: give every BEV group the same number of cameras "
                         "(convert.bev_groups mode=random with group_size [n, n]) or use batch size 1")
    depths = [s["gt_depth"] for s in samples]
    return {
        "images": torch.stack([s["images"] for s in samples]),
        "projection_mat": torch.stack([s["projection_mat"] for s in samples]),
        "image_wh": torch.stack([s["image_wh"] for s in samples]),
        "focal": torch.stack([s["focal"] for s in samples]),
        "timestamp": torch.tensor([s["timestamp"] for s in samples], dtype=torch.float64),
        "scene_ids": [s["scene_id"] for s in samples],
        "gt_boxes": [s["gt_boxes"] for s in samples],
        "gt_labels": [s["gt_labels"] for s in samples],
        "gt_ids": [s["gt_ids"] for s in samples],
        "gt_visibility": [s["gt_visibility"] for s in samples],
        "gt_depth": None if any(d is None for d in depths) else torch.stack(depths),
        "cameras": [s["cameras"] for s in samples],
        "meta": [s["meta"] for s in samples],
    }
