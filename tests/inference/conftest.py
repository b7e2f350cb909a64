"""A converted micro scene shared by the inference tests (rendered and converted once per session)."""

from __future__ import annotations

import pytest
from convert_factories import convert_params, run_conversion
from factories import make_scene


@pytest.fixture(scope="session")
def converted_scene(tmp_path_factory):
    """(raw scene Warehouse_000 with 2 cameras x 4 frames, conversion root, its OVPKL file), converted as one
    BEV group (``bev_groups.mode: all``, like the raw-scene source); read-only for the tests."""
    root = tmp_path_factory.mktemp("inference_scene")
    scene = make_scene(root / "raw" / "train" / "Warehouse_000")
    dirs, _, _ = run_conversion(root / "raw", root / "out", convert_params(bev_groups={"mode": "all"}), num_anchor=4)
    (pkl,) = sorted((dirs.ovpkl / "train").glob("*.pkl"))
    return scene, dirs.root, pkl
