"""KITTI 2D detection samples for DetectNet_v2 as a torch Dataset.

Reads ``<split_dir>/images/<stem>.jpg|png`` and ``labels/<stem>.txt`` (see :mod:`visionops.data.kitti`).
Labels are parsed once, up front, so problems surface in the main process with one message each:

* class names are matched **lower-cased** (TAO's converter lower-cases them; a mapping written with
  capitals is the classic cause of 0 mAP); unknown names are ignored with one warning per name;
* boxes partly outside the image are clipped, degenerate ones (no area after clipping) dropped and
  counted; an empty label file is a negative sample;
* an image whose size differs from the network input is resized to it (boxes scaled) when
  ``auto_resize`` is on, else it is an error naming the file.

Augmentation (:mod:`visionops.data.augment`) is drawn from ``numpy.random.default_rng((seed, epoch,
index))``: the same sample gets the same augmentation whatever the number of DataLoader workers, and a
new one every epoch (:meth:`KittiDetectionDataset.set_epoch`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionops.data.augment import AugmentConfig, colour_jitter, spatial_matrix, warp_boxes, warp_image
from visionops.data.kitti import parse_label_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class LabelStats:
    """What parsing the label files found (reported by training and tests)."""

    images: int = 0
    objects: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)
    empty_images: int = 0


class KittiDetectionDataset:
    """Samples ``{"image": (3, H, W) float32 in [0, 1], "boxes": (M, 4) float32 px, "labels": (M,) int64,
    "stem": str}`` plus the encoded ``"targets"`` when an ``encoder`` is given.

    Args:
        split_dir: folder with ``images/`` and ``labels/``.
        class_names: target classes in output-channel order (compared lower-cased).
        image_size: network input ``(width, height)``.
        augment: augmentation ranges, or None for evaluation.
        encoder: ``encoder(boxes (M, 4) px, labels (M,)) -> dict`` of target arrays (GridBox targets).
        auto_resize: resize images of another size to ``image_size`` instead of failing.
        class_map: extra source-name -> target-name mapping applied (lower-cased) before matching.
    """

    def __init__(self, split_dir: str | os.PathLike, class_names: Sequence[str], image_size: tuple[int, int], *,
                 augment: AugmentConfig | None = None, encoder: Callable[..., Mapping[str, Any]] | None = None,
                 auto_resize: bool = True, class_map: Mapping[str, str] | None = None, seed: int = 0) -> None:
        self.split_dir = Path(split_dir)
        images_dir, labels_dir = self.split_dir / "images", self.split_dir / "labels"
        if not images_dir.is_dir() or not labels_dir.is_dir():
            raise FileNotFoundError(f"{self.split_dir}: expected images/ and labels/ folders (KITTI layout); "
                                    "run the convert stage (`dvc repro convert`)")
        self.class_names = [c.lower() for c in class_names]
        self.class_index = {name: i for i, name in enumerate(self.class_names)}
        self.class_map = {k.lower(): v.lower() for k, v in (class_map or {}).items()}
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.augment, self.encoder, self.auto_resize, self.seed = augment, encoder, auto_resize, seed
        self.epoch = 0
        self.images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise FileNotFoundError(f"{images_dir}: no images")
        self.stats = LabelStats(images=len(self.images))
        self._labels = [self._load_labels(labels_dir / f"{p.stem}.txt") for p in self.images]
        for name, count in sorted(self.stats.unknown.items()):
            warnings.warn(f"{labels_dir}: class {name!r} is not a target class ({', '.join(self.class_names)}); "
                          f"its {count} boxes are ignored (map it with class_map to use it)", stacklevel=2)

    def _load_labels(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: label file missing for image {path.stem}")
        boxes, labels = [], []
        for obj in parse_label_file(path):
            name = self.class_map.get(obj.name.lower(), obj.name.lower())
            index = self.class_index.get(name)
            if index is None:
                self.stats.unknown[name] = self.stats.unknown.get(name, 0) + 1
                continue
            boxes.append(obj.box)
            labels.append(index)
            self.stats.per_class[name] = self.stats.per_class.get(name, 0) + 1
        self.stats.objects += len(boxes)
        if not boxes:
            self.stats.empty_images += 1
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations (call at the start of each epoch)."""
        self.epoch = int(epoch)

    def read_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of sample ``index`` at its stored size."""
        import cv2  # noqa: PLC0415

        path = self.images[index]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: not a readable image")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image (H, W, 3) float32 in [0, 1] at the network size, boxes (M, 4) px, labels (M,)) after
        resizing, clipping and (when configured) augmentation."""
        import cv2  # noqa: PLC0415

        rgb = self.read_image(index)
        boxes, labels = self._labels[index]
        boxes = boxes.copy()
        width, height = self.image_size
        if (rgb.shape[1], rgb.shape[0]) != (width, height):
            if not self.auto_resize:
                raise ValueError(f"{self.images[index]}: image is {rgb.shape[1]}x{rgb.shape[0]}, the network input "
                                 f"is {width}x{height}; resize the data or enable auto_resize")
            sx, sy = width / rgb.shape[1], height / rgb.shape[0]
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
            boxes *= np.array([sx, sy, sx, sy])
        clipped = boxes.copy()
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
        clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
        valid = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        boxes, labels = clipped[valid], labels[valid]
        image = rgb.astype(np.float32) / 255.0
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            matrix = spatial_matrix(rng, self.augment, width, height)
            image = warp_image(image, matrix)
            boxes, keep = warp_boxes(boxes, matrix, width, height, self.augment.min_box_size)
            labels = labels[keep]
            image = colour_jitter(rng, image, self.augment)
        return image, boxes.astype(np.float32), labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch  # noqa: PLC0415

        image, boxes, labels = self.sample(index)
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "boxes": torch.from_numpy(boxes),
            "labels": torch.from_numpy(labels),
            "stem": self.images[index].stem,
        }
        if self.encoder is not None:
            item["targets"] = {k: torch.as_tensor(v) for k, v in self.encoder(boxes, labels).items()}
        return item

    def label_report(self) -> dict[str, Any]:
        """Counts of the parsed labels (clipping is counted per sample, not here)."""
        return {"images": self.stats.images, "objects": self.stats.objects, "per_class": dict(self.stats.per_class),
                "unknown_classes": dict(self.stats.unknown), "empty_images": self.stats.empty_images}


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images and targets; boxes, labels and stems stay per-image lists."""
    import torch  # noqa: PLC0415

    out: dict[str, Any] = {
        "image": torch.stack([b["image"] for b in batch]),
        "boxes": [b["boxes"] for b in batch],
        "labels": [b["labels"] for b in batch],
        "stem": [b["stem"] for b in batch],
    }
    if "targets" in batch[0]:
        out["targets"] = {k: torch.stack([b["targets"][k] for b in batch]) for k in batch[0]["targets"]}
    return out
