"""Sparse4D speed and memory on this machine (issue 5 targets).

1. Training step time of a preset (default: the CPU ``default`` preset, 4 cameras, batch 2): forward with
   denoising queries + the criterion over every decoder layer + backward + AdamW, median of ``--steps``.
2. Inference ms/frame vs the number of cameras (1, 2, 4, 8 by default), streaming in eval mode with the
   instance bank carried (the first frame of each stream is a warm-up).
3. Peak memory of one deformable aggregation at 12 cameras x 900 anchors with the card's sizes (256 channels,
   8 groups, 13 points, FPN levels of a 960x540 input): the level-by-level path we run against the stacked
   form of the official fallback, each measured in a fresh process (peak RSS growth over the inputs).

Cameras sit on a 12 m ring looking at the origin; images are noise (speed does not depend on content).
Writes ``benchmarks/results/sparse4d_<device>.json`` (or ``--out``) and prints it.

    python benchmarks/bench_sparse4d.py [--preset default] [--device cpu] [--cameras 1 2 4 8] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # time the working tree, not an installed copy

from visionops.data.synthetic.cameras import ring_projections  # noqa: E402
from visionops.models.sparse4d.box_state import encode_gt  # noqa: E402
from visionops.models.sparse4d.presets import get_preset  # noqa: E402


def ring_cameras(num_cams: int, width: int, height: int, radius: float = 12.0) -> torch.Tensor:
    """(1, Ncam, 4, 4) world->pixel of pinhole cameras on a ring, 3 m high, looking at the origin."""
    return torch.from_numpy(ring_projections(num_cams, width, height, 0.6 * width, radius, 3.0)).float()[None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def training_step_seconds(cfg, device: torch.device, num_cams: int, batch: int, steps: int) -> dict:
    from visionops.training.sparse4d_module import Sparse4DModule  # noqa: PLC0415

    torch.manual_seed(0)
    module = Sparse4DModule(cfg, warmup_steps=0, total_steps=steps + 2).to(device)
    optimizer = module.configure_optimizers()["optimizer"]
    width, height = cfg.input_size
    gt = encode_gt(torch.tensor([[0.0, 0.0, 0.9, 0.6, 0.6, 1.8, 0.3], [2.0, 1.0, 1.0, 2.0, 1.2, 2.0, 1.0]]))
    data = {
        "images": torch.randn(batch, num_cams, 3, height, width), "image_wh":
        torch.tensor([width, height], dtype=torch.float32).expand(batch, num_cams, 2).clone(),
        "projection_mat": ring_cameras(num_cams, width, height).expand(batch, -1, -1, -1).clone(),
        "focal": torch.full((batch, num_cams), 0.6 * width), "gt_depth": None,
        "gt_boxes": [gt] * batch, "gt_labels": [torch.tensor([0, 1])] * batch, "gt_ids": [torch.tensor([1, 2])] * batch,
        "gt_visibility": [torch.ones(2, num_cams)] * batch, "scene_ids": [f"s{i}" for i in range(batch)],
        "cameras": [[f"c{k}" for k in range(num_cams)]] * batch, "meta": [{}] * batch,
    }
    module.train()
    times = []
    for step in range(steps + 1):
        data["timestamp"] = torch.full((batch,), step / 30.0, dtype=torch.float64)
        moved = {k: (v.to(device) if torch.is_tensor(v) else
                     [t.to(device) for t in v] if isinstance(v, list) and v and torch.is_tensor(v[0]) else v)
                 for k, v in data.items()}
        _sync(device)
        start = time.perf_counter()
        loss = module.training_step(moved, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if step:  # step 0 allocates and warms up
            times.append(time.perf_counter() - start)
    return {"cameras": num_cams, "batch": batch, "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3)}


def inference_ms_per_frame(cfg, device: torch.device, cameras: list[int], frames: int) -> list[dict]:
    from visionops.models.sparse4d.model import Sparse4D  # noqa: PLC0415

    torch.manual_seed(0)
    model = Sparse4D(cfg).to(device).eval()
    width, height = cfg.input_size
    rows = []
    for num_cams in cameras:
        model.reset(restart_ids=True)
        projection = ring_cameras(num_cams, width, height).to(device)
        images = torch.randn(1, num_cams, 3, height, width, device=device)
        times = []
        with torch.inference_mode():
            for t in range(frames + 1):
                _sync(device)
                start = time.perf_counter()
                model(images, projection, timestamp=torch.tensor([t / 30.0], dtype=torch.float64),
                      scene_ids=["bench"])
                _sync(device)
                if t:
                    times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1e3
        rows.append({"cameras": num_cams, "ms_per_frame": round(ms, 1), "fps": round(1e3 / ms, 2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


_DFA_CHILD = """
import resource, sys, torch
sys.path.insert(0, {src!r})
from visionops.models.sparse4d.deformable_aggregation import aggregate, aggregate_stacked
torch.manual_seed(0)
cams, n, p, g, c = 12, 900, 13, 8, 256
sizes = [(135, 240), (68, 120), (34, 60), (17, 30)]  # FPN strides 4..32 of 960x540
maps = [torch.randn(1, cams, c, h, w) for h, w in sizes]
uv = torch.rand(1, cams, n, p, 2) * 1.2 - 0.1
weights = torch.softmax(torch.randn(1, n, cams * len(sizes) * p, g), dim=2).reshape(1, n, cams, len(sizes), p, g)
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
rss = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS: inputs excluded
with torch.inference_mode():
    out = ({fn})(maps, uv, weights)
print((hwm_kb() - rss) / 1024.0)
"""


def dfa_peak_mb(function: str) -> float:
    """Peak RSS growth (MB) of one aggregation call at 12 cams x 900 anchors, in a fresh CPU process (Linux:
    the peak is reset after the inputs exist, through /proc/self/clear_refs)."""
    code = _DFA_CHILD.format(src=str(REPO / "src"), fn=function)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return round(float(out.strip().splitlines()[-1]), 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--train-cameras", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--skip-dfa-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    cfg = get_preset(args.preset)
    report: dict = {"benchmark": "bench_sparse4d", "preset": args.preset, "input_size": list(cfg.input_size),
                    "num_anchor": cfg.num_anchor, "num_decoder": cfg.num_decoder, "device": str(device),
                    "torch": torch.__version__, "threads": torch.get_num_threads()}
    report["training_step"] = training_step_seconds(cfg, device, args.train_cameras, args.batch, args.steps)
    print(json.dumps(report["training_step"]), flush=True)
    report["inference"] = inference_ms_per_frame(cfg, device, args.cameras, args.frames)
    if not args.skip_dfa_memory:
        level_wise, stacked = dfa_peak_mb("aggregate"), dfa_peak_mb("aggregate_stacked")
        report["dfa_peak_mb_12cams_900anchors"] = {"level_wise": level_wise, "stacked": stacked,
                                                   "ratio": round(level_wise / stacked, 3) if stacked else None}
    report.update(cpus=os.cpu_count(), python=platform.python_version(), machine=platform.machine())
    out = args.out or REPO / "benchmarks" / "results" / f"sparse4d_{args.preset}_{device.type}.json"
    print(json.dumps(report))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
