"""Synthetic Sparse4D batches built directly as tensors: two pinhole cameras looking at a few moving boxes,
images = coloured rectangles at the projected boxes (one colour per class), depth = the box's camera depth.

The batch layout is exactly the dataset's (see visionops.training.sparse4d_module). Shared by the module tests
and the DDP subprocess script.
"""

from __future__ import annotations

import math
import time

import torch
from torch.utils.data import Dataset

from visionops.data.synthetic.cameras import ring_projections
from visionops.models.sparse4d.box_state import encode_gt
from visionops.models.sparse4d.presets import DEFAULT

CLASSES = ("Person", "Forklift")
TINY = DEFAULT.replace(
    input_size=(128, 64), embed_dims=64, fpn_out_channels=64, anchor_embed_dims=(32, 8, 8, 16), num_anchor=32,
    num_temp_instances=16, num_decoder=2, num_heads=4, ffn_channels=128, num_groups=4, num_output=32,
    num_dn_groups=3, num_temp_dn_groups=2, max_dn_gt=8, num_classes=len(CLASSES), class_names=CLASSES,
)
W, H = TINY.input_size
FOCAL = 70.0
FPS = 10.0
COLOURS = torch.tensor([[1.0, 0.2, 0.2], [0.2, 0.4, 1.0]])
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]

# [x, y, z, w, l, h, yaw], class, velocity (m/s)
OBJECTS = [
    ([0.0, 0.0, 0.9, 0.6, 0.6, 1.8, 0.0], 0, (0.5, 0.0, 0.0)),
    ([2.5, 1.5, 1.0, 2.0, 1.2, 2.0, 0.5], 1, (0.0, -0.4, 0.0)),
    ([-2.0, -1.5, 0.9, 0.6, 0.6, 1.8, 1.2], 0, (0.0, 0.3, 0.0)),
]


def cameras(num_cams: int = 2) -> torch.Tensor:
    """(Ncam, 4, 4) world->pixel of cameras on a 9 m circle, 4 m high, looking at the origin."""
    return torch.from_numpy(ring_projections(num_cams, W, H, FOCAL, 9.0, 4.0, phase=0.3)).float()


def _corners(box: torch.Tensor) -> torch.Tensor:
    signs = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=torch.float32)
    local = signs * box[3:6] / 2
    c, s = math.cos(box[6]), math.sin(box[6])
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return local @ rot.T + box[:3]


def frame(t: int, proj: torch.Tensor, num_objects: int = 3) -> dict:
    """One stream's frame ``t``: images (K, 3, H, W) normalised, GT lists, depth (K, H, W)."""
    k = proj.shape[0]
    images = torch.full((k, 3, H, W), 0.35)
    depth = torch.zeros(k, H, W)
    boxes, labels, ids = [], [], []
    order = []
    for i, (box, label, vel) in enumerate(OBJECTS[:num_objects]):
        b = torch.tensor(box)
        b[:3] += torch.tensor(vel) * t / FPS
        boxes.append(encode_gt(b, torch.tensor(vel)))
        labels.append(label)
        ids.append(10 + i)
        pts = torch.cat([_corners(b), torch.ones(8, 1)], dim=1) @ proj.transpose(1, 2)  # (K, 8, 4)
        for cam in range(k):
            z = pts[cam, :, 2]
            if (z <= 0.1).any():
                continue
            uv = pts[cam, :, :2] / z[:, None]
            order.append((float(z.mean()), cam, uv, label))
    for z, cam, uv, label in sorted(order, key=lambda o: -o[0]):  # far first, near boxes paint over them
        x0, y0 = (uv.min(0).values.floor().clamp(min=0)).long().tolist()
        x1, y1 = uv.max(0).values.ceil().long().tolist()
        x1, y1 = min(x1, W), min(y1, H)
        if x1 > x0 and y1 > y0:
            images[cam, :, y0:y1, x0:x1] = COLOURS[label][:, None, None]
            depth[cam, y0:y1, x0:x1] = z
    visibility = torch.ones(len(boxes), k)
    return {"images": (images - MEAN) / STD, "gt_boxes": torch.stack(boxes), "gt_labels": torch.tensor(labels),
            "gt_ids": torch.tensor(ids), "gt_visibility": visibility, "gt_depth": depth}


def batch(t: int | list[int], scene: str | list[str] = "seq0", num_cams: int = 2, num_objects: int = 3) -> dict:
    """A batch of B streams (one frame each) in the dataset's layout."""
    ts = [t] if isinstance(t, int) else list(t)
    scenes = [scene] * len(ts) if isinstance(scene, str) else list(scene)
    proj = cameras(num_cams)
    frames = [frame(i, proj, num_objects) for i in ts]
    b = len(ts)
    return {
        "images": torch.stack([f["images"] for f in frames]),
        "projection_mat": proj[None].expand(b, -1, -1, -1).clone(),
        "image_wh": torch.tensor([float(W), float(H)]).expand(b, num_cams, 2).clone(),
        "focal": torch.full((b, num_cams), FOCAL),
        "timestamp": torch.tensor([i / FPS for i in ts], dtype=torch.float64),
        "scene_ids": scenes,
        "gt_boxes": [f["gt_boxes"] for f in frames],
        "gt_labels": [f["gt_labels"] for f in frames],
        "gt_ids": [f["gt_ids"] for f in frames],
        "gt_visibility": [f["gt_visibility"] for f in frames],
        "gt_depth": torch.stack([f["gt_depth"] for f in frames]),
        "cameras": [[f"Camera_{c:04d}" for c in range(num_cams)] for _ in range(b)],
        "meta": [{"scene_name": s, "frame_idx": i, "token": f"{s}_{i}", "bev_origin": [0.0, 0.0, 0.0]}
                 for s, i in zip(scenes, ts, strict=True)],
    }


class BatchList(Dataset):
    """Pre-built batches as a map-style dataset; use with ``DataLoader(ds, batch_size=None)``.
    ``poison_after``: items fetched after that many get NaN images (NaN-guard tests)."""

    def __init__(self, batches: list[dict], poison_after: int | None = None) -> None:
        self.batches, self.poison_after, self.fetched = batches, poison_after, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict:
        self.fetched += 1
        item = self.batches[index]
        if self.poison_after is not None and self.fetched > self.poison_after:
            item = {**item, "images": torch.full_like(item["images"], float("nan"))}
        return item


def train_in_order(module, frames: list[dict], steps: int, reset_every: int | None = None) -> tuple[list[float], float]:
    """A plain optimisation loop over ``frames`` in order (the bank carries state from step to step), clipped
    at 25 like the trainer; ``reset_every`` forgets the streams at the start of every pass. Returns the loss per
    step and the seconds taken."""
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    module.train()
    losses, start = [], time.perf_counter()
    for step in range(steps):
        if reset_every and step % reset_every == 0:
            module.reset_streams()
        loss = module.training_step(frames[step % len(frames)], step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 25.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses, time.perf_counter() - start
