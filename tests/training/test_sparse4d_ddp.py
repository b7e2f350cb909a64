"""Sparse4D under DDP: 2 CPU processes (gloo, Lightning strategy="ddp") train 2 steps and validate on a tiny
synthetic dataset. Runs in a subprocess because Lightning's DDP launcher re-executes the main script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from sparse4d_synthetic import TINY, BatchList, batch
    from torch.utils.data import DataLoader
    from visionops.training.sparse4d_fit import fit_sparse4d
    from visionops.training.sparse4d_module import Sparse4DModule

    torch.manual_seed(0)
    module = Sparse4DModule(TINY, lr=1e-3, warmup_steps=0)
    # every rank gets its own streams (the real sampler shards by rank the same way) and the same step count
    rank = int(__import__("os").environ.get("LOCAL_RANK", 0))
    train = DataLoader(BatchList([batch([t], [f"r{rank}"]) for t in range(2)]), batch_size=None)
    val = DataLoader(BatchList([batch([0], [f"v{rank}"])]), batch_size=None)
    metrics = fit_sparse4d(module, train, val, sys.argv[1], epochs=1, accelerator="cpu", devices=2,
                           strategy="ddp")
    first = next(module.model.parameters()).detach().flatten()[:4].tolist()
    print(f"RANK {module.global_rank} world {module.trainer.world_size} steps {module.global_step} "
          f"recall {metrics['val/recall_2m']:.3f} weights {first}", flush=True)
""")


def test_ddp_two_cpu_processes_train_and_save(tmp_path):
    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT)
    out = tmp_path / "model.ckpt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(script), str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("RANK "))
    assert [line.split()[1:6] for line in lines] == [["0", "world", "2", "steps", "2"],
                                                      ["1", "world", "2", "steps", "2"]]
    # DDP keeps the replicas identical: both ranks end with the same weights
    assert lines[0].split("weights")[1] == lines[1].split("weights")[1]
    checkpoint = torch.load(out, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2
