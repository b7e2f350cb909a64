"""CPU latency of DetectNet_v2 before and after pruning, same backend, same process, same input.

Target (issue 4): the pruned model is faster than the unpruned one in proportion to its MACs; we report
the speed-up next to the MAC and parameter ratios. Where a pruned model exists (``dvc repro`` wrote
``models/detectnet_v2/pruned.pt``), it is the one timed; otherwise (``--synthetic``, or no file) a
freshly initialised ResNet-18 DetectNet_v2 is pruned with TAO's rule after giving its filters the spread
of L2 norms an L1-regularised model ends with (a seeded draw), so the benchmark runs on a fresh clone.

Timing: ``torch.inference_mode``, eval mode, batch 1 (and ``--batch``), ``--warmup`` untimed runs, then
the median of ``--repeats`` runs, torch intra-op threads = all cores. Writes
``benchmarks/results/detectnet_latency.json`` (or ``--out``) and prints it.

    python benchmarks/bench_detectnet_latency.py [--size 480 272] [--batch 1] [--synthetic]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # time the working tree, not an installed copy

from visionops.config import load_params  # noqa: E402
from visionops.models.detectnet_v2.model import DetectNetV2  # noqa: E402
from visionops.pruning import PruneConfig, load_pruned, prune_model  # noqa: E402


def _latency_ms(model: torch.nn.Module, images: torch.Tensor, warmup: int, repeats: int) -> dict[str, float]:
    model.eval()
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(images)
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "images_per_second": round(images.shape[0] * 1e3 / statistics.median(times), 2)}


def _synthetic_pruned(net, example: torch.Tensor, prune_params) -> torch.nn.Module:
    """A seeded model whose filter norms spread like an L1-trained one's, pruned with the params' rule."""
    torch.manual_seed(0)
    model = DetectNetV2(len(net.classes), arch=net.arch, all_projections=net.all_projections)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                # log-uniform per-filter scale over 3 decades: L1 drives many filters towards zero
                scale = torch.exp(torch.empty(module.out_channels).uniform_(-6.9, 0.0))
                module.weight.mul_(scale.view(-1, 1, 1, 1))
    prune_model(model, example, PruneConfig(**prune_params.model_dump()), output_layers=list(model.head_names))
    return model


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="input size; default detectnet_v2.input_size of params.yaml")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--synthetic", action="store_true", help="ignore models/detectnet_v2/pruned.pt")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "detectnet_latency.json")
    args = parser.parse_args(argv)

    params = load_params(REPO / "params.yaml")
    net = params.detectnet_v2
    width, height = args.size or net.input_size
    example = torch.zeros(1, 3, height, width)
    images = torch.randn(args.batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    torch.set_num_threads(os.cpu_count() or 1)

    def build() -> DetectNetV2:
        return DetectNetV2(len(net.classes), arch=net.arch, all_projections=net.all_projections)

    pruned_file = REPO / "models" / "detectnet_v2" / "pruned.pt"
    if pruned_file.is_file() and not args.synthetic:
        pruned, _ = load_pruned(pruned_file, build, example)
        source = str(pruned_file.relative_to(REPO))
    else:
        pruned = _synthetic_pruned(net, example, params.prune)
        source = "synthetic (seeded log-uniform filter norms, params.yaml prune rule)"
    unpruned = build()

    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    def macs(model) -> int:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model.eval()(example)
        return counter.get_total_flops() // 2

    before = _latency_ms(unpruned, images, args.warmup, args.repeats)
    after = _latency_ms(pruned, images, args.warmup, args.repeats)
    params_before = sum(p.numel() for p in unpruned.parameters())
    params_after = sum(p.numel() for p in pruned.parameters())
    macs_before, macs_after = macs(unpruned), macs(pruned)
    report = {
        "benchmark": "bench_detectnet_latency",
        "arch": net.arch,
        "input_size": [width, height],
        "batch": args.batch,
        "backend": f"torch {torch.__version__} eager, CPU, {torch.get_num_threads()} threads",
        "pruned_model": source,
        "unpruned": {**before, "params": params_before, "gmacs": round(macs_before / 1e9, 3)},
        "pruned": {**after, "params": params_after, "gmacs": round(macs_after / 1e9, 3)},
        "params_ratio": round(params_before / params_after, 2),
        "macs_ratio": round(macs_before / macs_after, 2),
        "speedup": round(before["median_ms"] / after["median_ms"], 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
