"""Benchmark the synthetic warehouse renderer on the default dataset (or a subset).

Renders with :func:`visionops.data.synthetic.render_dataset` into a temporary folder (or ``--out``) and
prints a JSON report: wall seconds, camera-frames per second, the CPU time split by stage summed over
the workers (background, raycast, shading, composite, encode, depth), the parent's scene building and
annotation time, and the data size.

    python benchmarks/bench_render.py                       # default: 2 train + 1 val, 4 cams, 150 f
    python benchmarks/bench_render.py --frames 30 --json out.json
    python benchmarks/bench_render.py --width 1920 --height 1080 --scenes train=1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def _params(overrides: dict):
    from visionops.config import SyntheticParams

    return SyntheticParams(**overrides)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="*", default=None, help="split=count ... (default: train=2 val=1)")
    parser.add_argument("--cameras", type=int)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--no-depth", action="store_true")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", type=Path, help="keep the rendered data here (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "render.json",
                        help="also write the report to this file")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in dict(cameras=args.cameras, frames=args.frames, width=args.width,
                                       height=args.height, workers=args.workers, seed=args.seed).items()
                 if v is not None}
    if args.scenes:
        overrides["scenes"] = {s.split("=")[0]: int(s.split("=")[1]) for s in args.scenes}
    if args.no_depth:
        overrides["depth"] = False
    params = _params(overrides)

    from visionops.data.synthetic import render_dataset

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_render_"))
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n

    start = time.perf_counter()
    cpu_start = os.times()
    summaries = render_dataset(params, out, progress=progress)
    wall = time.perf_counter() - start
    cpu = os.times()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    video = sum(p.stat().st_size for p in out.rglob("*.mp4"))
    depth = sum(p.stat().st_size for p in out.rglob("*.h5"))
    stages: Counter = Counter()
    for s in summaries:
        stages.update(s["timings"])
    camera_frames = sum(len(s["cameras"]) * s["frames"] for s in summaries)
    worker_cpu = sum(stages.values())
    report = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in _as_dict(params).items()},
        "scenes": len(summaries),
        "camera_frames": camera_frames,
        "progress_reported": done,
        "wall_seconds": round(wall, 2),
        "camera_frames_per_second": round(camera_frames / wall, 2),
        "ms_per_camera_frame_cpu": round(1000 * worker_cpu / camera_frames, 2),
        "stage_cpu_seconds": {k: round(v, 2) for k, v in sorted(stages.items())},
        "stage_share": {k: round(v / worker_cpu, 3) for k, v in sorted(stages.items())},
        "parent_cpu_seconds": round((cpu.user - cpu_start.user) + (cpu.system - cpu_start.system), 2),
        "children_cpu_seconds": round((cpu.children_user - cpu_start.children_user)
                                      + (cpu.children_system - cpu_start.children_system), 2),
        "data_mb": round(size / 1e6, 1),
        "video_mb": round(video / 1e6, 1),
        "depth_mb": round(depth / 1e6, 1),
        "visible_boxes": sum(s["visible_boxes"] for s in summaries),
        "objects": dict(sum((Counter(s["objects"]) for s in summaries), Counter())),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
    }
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return report


def _as_dict(params) -> dict:
    if hasattr(params, "model_dump"):
        return params.model_dump()
    return dict(vars(params))


if __name__ == "__main__":  # the renderer spawns worker processes: keep the entry point guarded
    main(sys.argv[1:])
