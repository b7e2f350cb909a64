"""Fixtures for the synthetic renderer tests: parameters, tiny rendered scenes, explicit scenes, and an
independent ray caster (face-by-face plane intersection, float64) to cross-check the renderer's slabs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from visionops.data.schema import CLASS_NAMES_2025

DEFAULTS = dict(
    seed=0, scenes={"train": 2, "val": 1}, cameras=4, frames=150, fps=30.0, width=960, height=540,
    floor_size=(20.0, 15.0), classes=list(CLASS_NAMES_2025), objects_per_scene=(6, 10), depth=True,
    camera_naming="four_digit", crf=18, min_visible_pixels=16, workers=2,
)
TINY = dict(width=160, height=96, cameras=3, frames=12, workers=1, scenes={"train": 1},
            floor_size=(16.0, 12.0), objects_per_scene=(5, 6))


def make_params(**overrides):
    """``visionops.config.SyntheticParams`` when it exists, else a stand-in with the same fields."""
    try:
        from visionops.config import SyntheticParams  # noqa: PLC0415
    except ImportError:
        return SimpleNamespace(**{**DEFAULTS, **overrides})
    return SyntheticParams(**overrides)


@pytest.fixture(scope="session")
def params_factory():
    return make_params


@pytest.fixture(scope="session")
def plain_params_factory():
    """Always a plain namespace: exercises the renderer's own checks, which the config model may preempt."""
    return lambda **overrides: SimpleNamespace(**{**DEFAULTS, **overrides})


@pytest.fixture(scope="session")
def tiny_params():
    return make_params(**TINY)


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory, tiny_params):
    """A rendered tiny train scene: (scene folder, summary, spec)."""
    from visionops.data.synthetic.scene import build_scene_spec, render_spec  # noqa: PLC0415

    spec = build_scene_spec(tiny_params, "train", 0)
    folder = tmp_path_factory.mktemp("tiny") / spec.name
    summary = render_spec(spec, folder, workers=1)
    return folder, summary, spec


# --------------------------------------------------------------------------------------------------
# explicit scenes
# --------------------------------------------------------------------------------------------------


def make_camera(cam_id: str, position, target, width=160, height=96, hfov=70.0):
    from visionops.data.synthetic.cameras import CameraSpec, intrinsics, look_at  # noqa: PLC0415

    R, t = look_at(np.asarray(position, float), np.asarray(target, float))
    return CameraSpec(cam_id, intrinsics(width, height, hfov), R, t, width, height, hfov_deg=hfov)


def static_track(cls: str, object_id: int, xy, yaw: float, frames: int, seed: int = 0):
    """A standing object of class ``cls`` at ``xy`` (2,) with heading ``yaw`` for ``frames`` frames."""
    from visionops.data.synthetic.motion import Track  # noqa: PLC0415
    from visionops.data.synthetic.population import sample_instance  # noqa: PLC0415

    inst = sample_instance(np.random.default_rng(seed), cls)
    return Track(inst, object_id, np.tile(np.asarray(xy, float), (frames, 1)), np.full(frames, yaw),
                 np.zeros(frames), np.zeros(frames), np.ones(frames, dtype=bool))


def explicit_spec(cameras, tracks, boxes=(), frames=3, name="Warehouse_000", split="train"):
    """SceneSpec of a bare 20 x 16 m room (origin in the middle) with the given content."""
    from visionops.data.synthetic.layout import empty_layout  # noqa: PLC0415
    from visionops.data.synthetic.scene import SceneSpec  # noqa: PLC0415
    from visionops.data.synthetic.shading import Lighting  # noqa: PLC0415

    layout = empty_layout((-10.0, -8.0), (10.0, 8.0), boxes=boxes)
    light = Lighting(direction=np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93]))
    return SceneSpec(name=name, split=split, index=0, layout=layout, lighting=light, cameras=list(cameras),
                     tracks=list(tracks), frames=frames, fps=30.0, texture_seed=1,
                     noise_seeds=tuple(range(len(cameras))))


def solid_box(lo, hi):
    from visionops.data.synthetic.layout import StaticBox  # noqa: PLC0415

    return StaticBox(np.asarray(lo, float), np.asarray(hi, float), np.array([0.3, 0.2, 0.1]), "clutter")


@pytest.fixture(scope="session")
def explicit():
    return SimpleNamespace(camera=make_camera, track=static_track, spec=explicit_spec, box=solid_box)


# --------------------------------------------------------------------------------------------------
# independent reference caster
# --------------------------------------------------------------------------------------------------


def _faces_hit(origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(N,) smallest t > 0 where rays (origin (3,), dirs (N, 3)) cross one of the six faces of the box
    [lo, hi], found face by face: intersect the face's plane, keep it if the point lies in the face."""
    best = np.full(len(dirs), np.inf)
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for value in (lo[axis], hi[axis]):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (value - origin[axis]) / dirs[:, axis]
            p = origin + t[:, None] * dirs
            inside = np.ones(len(dirs), dtype=bool)
            for o in others:
                inside &= (p[:, o] >= lo[o] - 1e-9) & (p[:, o] <= hi[o] + 1e-9)
            ok = inside & np.isfinite(t) & (t > 0.05)
            best = np.where(ok & (t < best), t, best)
    return best


def reference_cast(calib_sensor, spec, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent render of z-depth and instance ids of an explicit scene (no doors) from the
    calibration as read back from disk: ((H, W) depth m, (H, W) track index or -1)."""
    K, E = calib_sensor.intrinsic, calib_sensor.extrinsic
    R, t = E[:, :3], E[:, 3]
    w, h = calib_sensor.width, calib_sensor.height
    uu, vv = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
    pix = np.stack([uu.ravel(), vv.ravel(), np.ones(w * h)], axis=1)
    dirs = (pix @ np.linalg.inv(K).T) @ R  # camera z = 1 -> t is z-depth
    origin = -R.T @ t
    lay = spec.layout
    room_lo = np.array([*lay.floor_min, 0.0])
    room_hi = np.array([*lay.floor_max, lay.wall_height])
    # Leaving the room: for rays from inside, the exit is the largest face crossing... use the planes.
    depth = np.full(len(dirs), np.inf)
    for axis in range(3):
        for value in (room_lo[axis], room_hi[axis]):
            with np.errstate(divide="ignore", invalid="ignore"):
                tt = (value - origin[axis]) / dirs[:, axis]
            depth = np.where((tt > 0) & (tt < depth), tt, depth)
    ids = np.full(len(dirs), -1)
    for box in lay.boxes:
        tb = _faces_hit(origin, dirs, box.lo, box.hi)
        depth = np.minimum(depth, tb)
    for index, track in enumerate(spec.tracks):
        if not track.present[frame]:
            continue
        lo, hi = track.instance.parts_at(float(track.gait[frame]), track.swing_gain(frame))
        yaw = float(track.yaw[frame])
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])  # local -> world
        centre = track.location(frame)
        o_local = rot.T @ (origin - centre)
        d_local = dirs @ rot
        for plo, phi in zip(lo, hi, strict=True):
            tp = _faces_hit(o_local, d_local, plo, phi)
            closer = tp < depth
            depth = np.where(closer, tp, depth)
            ids = np.where(closer, index, ids)
    return depth.reshape(h, w), ids.reshape(h, w)


@pytest.fixture(scope="session")
def reference():
    return reference_cast
