"""Whole-pipeline timing: the default `dvc repro` (all stages that exist) in a temporary copy of the repo.

Target (issue: walking skeleton): the default pipeline finishes in about 10 minutes on a 2-core CPU.
Writes ``benchmarks/results/pipeline.json`` with the wall time per stage and the ratio to the budget.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 600.0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="visionops-bench-") as tmp:
        repo = Path(tmp) / "repo"
        files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                               capture_output=True, check=True).stdout.decode().split("\0")
        for rel in filter(None, files):
            if (REPO / rel).is_file():
                (repo / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, repo / rel)
        env = dict(os.environ, PYTHONPATH=str(repo / "src"), DVC_NO_ANALYTICS="1",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        env.pop("MLFLOW_TRACKING_URI", None)
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=b@b.invalid", "commit", "-qm", "bench"]):
            subprocess.run(cmd, cwd=repo, check=True, env=env)
        stages = subprocess.run([str(Path(sys.executable).parent / "dvc"), "stage", "list", "--name-only"], cwd=repo,
                                env=env, capture_output=True, text=True, check=True).stdout.split()
        timings = {}
        total_start = time.perf_counter()
        for stage in stages:
            started = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", "--single-item", stage], cwd=repo,
                           env=env, check=True)
            timings[stage] = round(time.perf_counter() - started, 2)
        total = time.perf_counter() - total_start
        raw = repo / "data" / "raw"
        size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file()) if raw.exists() else 0
    result = {
        "stages": timings,
        "total_seconds": round(total, 2),
        "budget_seconds": BUDGET_SECONDS,
        "ratio_to_budget": round(total / BUDGET_SECONDS, 3),
        "raw_data_mb": round(size / 1e6, 1),
        "cpus": os.cpu_count(),
        "python": re.sub(r"\s+", " ", sys.version),
    }
    out = REPO / "benchmarks" / "results" / "pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
