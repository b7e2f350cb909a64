"""Preview mosaics: one frame of every camera with its ground-truth boxes, for MLflow and humans."""

from __future__ import annotations

import math

import numpy as np

from visionops.data.raw import RawScene
from visionops.data.schema import CLASS_NAMES_2025

CLASS_COLOURS = {
    "Person": (230, 57, 70),
    "Forklift": (255, 183, 3),
    "NovaCarter": (42, 157, 143),
    "Transporter": (69, 123, 157),
    "FourierGR1T2": (155, 93, 229),
    "AgilityDigit": (241, 91, 181),
}


def scene_preview(scene: RawScene, frame: int = 0, tile_width: int = 480):
    """PIL image: ``frame`` of every camera in a grid, visible GT boxes drawn in class colours.

    Args:
        scene: the raw scene.
        frame: 0-based frame index.
        tile_width: width of each camera tile in pixels (height keeps the aspect ratio).
    """
    from PIL import Image, ImageDraw  # noqa: PLC0415

    from visionops.data.video import read_frame  # noqa: PLC0415

    cams = scene.camera_ids
    objects = scene.ground_truth.get(frame, []) if scene.has_ground_truth else []
    tiles = []
    for cam in cams:
        rgb = read_frame(scene.video_path(cam), frame)
        image = Image.fromarray(rgb)
        draw = ImageDraw.Draw(image)
        for obj in objects:
            box = obj.bbox_visible.get(cam)
            if box is None:
                continue
            colour = CLASS_COLOURS.get(obj.object_type, (255, 255, 255))
            draw.rectangle([float(v) for v in box], outline=colour, width=max(1, rgb.shape[1] // 480))
            draw.text((float(box[0]) + 2, float(box[1]) + 1), f"{obj.object_type} {obj.object_id}", fill=colour)
        draw.text((6, 4), f"{scene.name}/{cam} frame {frame}", fill=(255, 255, 255))
        scale = tile_width / image.width
        tiles.append(image.resize((tile_width, max(1, round(image.height * scale)))))
    if not tiles:
        raise ValueError(f"{scene.path}: no cameras to preview")
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    tile_h = max(t.height for t in tiles)
    mosaic = Image.new("RGB", (cols * tile_width, rows * tile_h), (20, 20, 20))
    for i, tile in enumerate(tiles):
        mosaic.paste(tile, ((i % cols) * tile_width, (i // cols) * tile_h))
    return mosaic


def class_counts(scene: RawScene) -> dict[str, int]:
    """Distinct tracks per class in the scene's ground truth."""
    tracks: dict[str, set[int]] = {name: set() for name in CLASS_NAMES_2025}
    for objects in scene.ground_truth.values():
        for obj in objects:
            tracks.setdefault(obj.object_type, set()).add(obj.object_id)
    return {name: len(ids) for name, ids in tracks.items()}


def mean_visible_fraction(scene: RawScene) -> float:
    """Mean over GT rows of (cameras where visible) / (cameras) — a rough coverage figure."""
    n_cams = max(1, len(scene.camera_ids))
    rows = [len(o.bbox_visible) / n_cams for objs in scene.ground_truth.values() for o in objs]
    return float(np.mean(rows)) if rows else 0.0


def draw_box3d(image, boxes: np.ndarray, names, projection: np.ndarray, *, labels=None, width: int = 2):
    """Draw 3D boxes onto a PIL image in place.

    Args:
        image: PIL RGB image of the camera.
        boxes: (N, >=7) ``[x, y, z, w, l, h, yaw]`` in the frame ``projection`` maps from (metres, rad).
        names: N class names (colours).
        projection: (3, 4) that frame -> pixels (``K @ [R|t]``).
        labels: optional N strings drawn at the top of each box.
    """
    from PIL import ImageDraw  # noqa: PLC0415

    from visionops.data.box_projection import BOX_EDGES, NEAR  # noqa: PLC0415
    from visionops.data.schema import box_corners  # noqa: PLC0415

    draw = ImageDraw.Draw(image)
    for i, box in enumerate(np.asarray(boxes, dtype=np.float64)):
        corners = box_corners(box[:3], box[3:6], np.array([0.0, 0.0, box[6]]))
        hom = np.concatenate([corners, np.ones((8, 1))], axis=1) @ projection.T
        if np.any(hom[:, 2] < NEAR):
            continue  # partly behind the camera: a wrapped projection would only confuse
        uv = hom[:, :2] / hom[:, 2:3]
        colour = CLASS_COLOURS.get(str(names[i]), (255, 255, 255))
        for a, b in BOX_EDGES:
            draw.line([tuple(uv[a]), tuple(uv[b])], fill=colour, width=width)
        if labels is not None:
            top = uv[np.argmin(uv[:, 1])]
            draw.text((float(top[0]) + 2, float(top[1]) - 12), str(labels[i]), fill=colour)
    return image
