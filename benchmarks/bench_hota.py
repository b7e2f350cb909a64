"""Speed of the AI City HOTA evaluation on one synthetic full-length scene.

Target (issue 6): scoring a full 9000-frame scene with ~100 objects (~30 visible per frame, all classes)
takes seconds, not minutes; the budget below is 30 s for parsing both files plus ``evaluate_hota``.

Generates (seeded) such a scene and predictions = GT with box noise, dropped rows, false positives and
id switches. Times parsing the two track files and ``evaluate_hota``; prints a JSON line and writes it
to ``benchmarks/results/hota.json`` (or ``--out``) with seconds, rows/s and the ratio to the budget.

    python benchmarks/bench_hota.py [--frames 9000] [--objects 100] [--visible 30] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # time the working tree, not an installed copy

from visionops.evaluation.aicity_format import format_tracks, load_tracks  # noqa: E402
from visionops.evaluation.hota import evaluate_hota  # noqa: E402

BUDGET_SECONDS = 30.0

# Class id -> (share of the objects, [w, l, h] metres): people dominate, as in the real scenes.
_CLASSES = {
    0: (0.70, (0.5, 0.5, 1.8)),
    1: (0.06, (1.2, 2.5, 2.2)),
    2: (0.08, (0.5, 0.7, 0.4)),
    3: (0.08, (0.8, 1.4, 0.3)),
    4: (0.05, (0.6, 0.5, 1.7)),
    5: (0.03, (0.6, 0.5, 1.75)),
}


def synthetic_scene(
    frames: int, objects: int, visible: int, seed: int, scene_id: int = 17
) -> tuple[np.ndarray, np.ndarray]:
    """GT and prediction rows (N, 11) of a synthetic warehouse scene.

    Objects follow smooth sinusoidal paths in a 60 m x 40 m floor, each visible in one contiguous
    interval so that on average ``visible`` objects are on screen per frame.
    """
    rng = np.random.default_rng(seed)
    shares = np.array([share for share, _ in _CLASSES.values()])
    class_of = rng.choice(len(_CLASSES), size=objects, p=shares / shares.sum())
    class_of[: len(_CLASSES)] = np.arange(len(_CLASSES))  # every class present
    sizes = np.array([_CLASSES[c][1] for c in class_of]) * rng.uniform(0.9, 1.1, (objects, 3))

    t = np.arange(frames)[None, :] / 30.0
    centre = rng.uniform([5, 5], [55, 35], (objects, 2))
    amp = rng.uniform(2, 10, (objects, 2))
    omega = rng.uniform(0.01, 0.1, (objects, 2))
    phase = rng.uniform(0, 2 * np.pi, (objects, 2))
    x = centre[:, 0:1] + amp[:, 0:1] * np.sin(omega[:, 0:1] * t + phase[:, 0:1])
    y = centre[:, 1:2] + amp[:, 1:2] * np.sin(omega[:, 1:2] * t + phase[:, 1:2])
    vx = amp[:, 0:1] * omega[:, 0:1] * np.cos(omega[:, 0:1] * t + phase[:, 0:1])
    vy = amp[:, 1:2] * omega[:, 1:2] * np.cos(omega[:, 1:2] * t + phase[:, 1:2])
    yaw = np.arctan2(vy, vx)

    length = np.clip(rng.normal(frames * visible / objects, frames * 0.05, objects), 30, frames).astype(int)
    start = (rng.uniform(0, 1, objects) * (frames - length)).astype(int)
    obj, frame = np.nonzero(
        (np.arange(frames)[None, :] >= start[:, None]) & (np.arange(frames)[None, :] < (start + length)[:, None])
    )
    gt = np.column_stack(
        [
            np.full(len(obj), scene_id),
            class_of[obj],
            obj + 1,
            frame,
            x[obj, frame],
            y[obj, frame],
            sizes[obj, 2] / 2,
            sizes[obj],
            yaw[obj, frame],
        ]
    ).astype(np.float64)

    pred = gt.copy()
    n = len(pred)
    pred[:, 4:6] += rng.normal(0, 0.08, (n, 2))
    pred[:, 6] += rng.normal(0, 0.03, n)
    pred[:, 7:10] *= rng.normal(1, 0.05, (n, 3))
    pred[:, 10] += rng.normal(0, 0.05, n)
    # Id switches: a third of the tracks get a new id from a random frame of their interval on.
    switch_at = np.where(rng.uniform(size=objects) < 0.3, start + rng.uniform(0, 1, objects) * length, np.inf)
    switched = pred[:, 3] >= switch_at[obj]
    pred[switched, 2] += 1000
    pred = pred[rng.uniform(size=n) > 0.1]  # 10% missed detections
    fp_frames = rng.integers(0, frames, n // 100)
    fp = np.column_stack(
        [
            np.full(len(fp_frames), scene_id),
            np.zeros(len(fp_frames)),
            5000 + np.arange(len(fp_frames)),
            fp_frames,
            rng.uniform(0, 60, len(fp_frames)),
            rng.uniform(0, 40, len(fp_frames)),
            np.full(len(fp_frames), 0.9),
            np.tile([0.5, 0.5, 1.8], (len(fp_frames), 1)),
            rng.uniform(-np.pi, np.pi, len(fp_frames)),
        ]
    )
    return gt, np.concatenate([pred, fp])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=9000)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--visible", type=int, default=30, help="mean objects visible per frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="aicity2025", choices=["aicity2025", "location"])
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "hota.json", help="write the JSON result here"
    )
    args = parser.parse_args(argv)

    gt, pred = synthetic_scene(args.frames, args.objects, args.visible, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, pred_path = Path(tmp, "gt.txt"), Path(tmp, "pred.txt")
        gt_path.write_text(format_tracks(gt))
        pred_path.write_text(format_tracks(pred))
        t0 = time.perf_counter()
        gt_rows, _ = load_tracks(gt_path)
        pred_rows, _ = load_tracks(pred_path)
        t1 = time.perf_counter()
        evaluate_hota(gt_rows[:1], pred_rows[:1], args.protocol)  # warm-up: trackeval import
        t2 = time.perf_counter()
        result = evaluate_hota(gt_rows, pred_rows, args.protocol)
        t3 = time.perf_counter()

    rows = len(gt_rows) + len(pred_rows)
    report = {
        "benchmark": "bench_hota",
        "protocol": args.protocol,
        "frames": args.frames,
        "objects": args.objects,
        "gt_rows": len(gt_rows),
        "pred_rows": len(pred_rows),
        "mean_gt_per_frame": round(len(gt_rows) / args.frames, 2),
        "parse_seconds": round(t1 - t0, 3),
        "parse_rows_per_second": round(rows / (t1 - t0)),
        "evaluate_seconds": round(t3 - t2, 3),
        "evaluate_rows_per_second": round(rows / (t3 - t2)),
        "total_seconds": round(t1 - t0 + t3 - t2, 3),
        "budget_seconds": BUDGET_SECONDS,
        "ratio_to_budget": round((t1 - t0 + t3 - t2) / BUDGET_SECONDS, 3),
        # Scene length (frames at 30 fps) over evaluation time: > 1 means faster than the video plays.
        "realtime_factor": round(args.frames / 30.0 / (t3 - t2), 1),
        "hota": round(result.overall["HOTA"], 3),
        "deta": round(result.overall["DetA"], 3),
        "assa": round(result.overall["AssA"], 3),
        "loca": round(result.overall["LocA"], 3),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    line = json.dumps(report)
    print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
