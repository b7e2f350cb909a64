"""A toy KITTI set for DetectNet_v2 tests (importable by name: tests/ is on the pytest pythonpath)."""

from __future__ import annotations

import cv2
import numpy as np

from visionops.data.kitti import KittiObject, write_sample

W, H = 128, 96
CLASSES = ("person", "forklift")


def toy_kitti(split_dir, count=4, seed=0):
    """Images with one red 'person' and one blue 'forklift' rectangle each, on a noisy grey floor."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = (rng.normal(110, 8, (H, W, 3))).clip(0, 255).astype(np.uint8)
        objects = []
        for name, colour, (w, h) in (("person", (220, 40, 40), (24, 48)), ("forklift", (40, 60, 220), (48, 32))):
            x1 = int(rng.integers(0, W - w))
            y1 = int(rng.integers(0, H - h))
            if objects and not (x1 + w <= objects[0].box[0] or x1 >= objects[0].box[2]):
                x1 = (x1 + W // 2) % (W - w)  # keep the two apart
            image[y1:y1 + h, x1:x1 + w] = colour
            objects.append(KittiObject(name, 0.0, 0, (float(x1), float(y1), float(x1 + w), float(y1 + h))))
        ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        write_sample(split_dir, f"toy_{i}", png.tobytes(), objects)
