"""dvc.yaml's per-key params lists stay complete: a stage that lists keys one by one (so another stage's schedule
does not re-run it) must still list every key of its section it reads, or a change to that key goes unnoticed."""

from __future__ import annotations

from pathlib import Path

import yaml

from visionops.config import Params

REPO = Path(__file__).resolve().parents[1]


def _params(stage: str) -> list[str]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["params"]


def test_phase1_depends_on_every_detectnet_key_but_the_retrain_schedule():
    listed = {key.removeprefix("detectnet_v2.") for key in _params("train_detectnet")}
    assert listed == set(Params().detectnet_v2.model_dump()) - {"retrain"}


def test_sparse4d_training_depends_on_every_sparse4d_key_but_inference():
    listed = {key.removeprefix("sparse4d.") for key in _params("train_sparse4d")}
    assert listed == set(Params().sparse4d.model_dump()) - {"infer"}
