"""Explicitly constructed scenes: occlusion, depth and visible boxes checked against an independent
ray caster (conftest.reference_cast: face-by-face plane intersection in float64 from calibration.json)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from visionops.data.raw import RawScene
from visionops.data.synthetic.scene import render_spec


def _render(tmp_path, spec):
    folder = tmp_path / spec.name
    render_spec(spec, folder, workers=1)
    return RawScene(folder)


@pytest.fixture(scope="module")
def behind_stack(tmp_path_factory, explicit):
    """A NovaCarter behind a solid 2.5 m pallet stack as seen from camera A; camera B sees it from the
    side. A Person stands in the open, visible to both. A Forklift sticks through the far wall (as objects
    do in doorways): only its parts inside the room may be drawn, also where the ray enters its box in
    front of the wall and passes a gap of the cabin."""
    a = explicit.camera("Camera_0000", (-8.0, 0.0, 3.0), (4.0, 0.0, 0.0))
    b = explicit.camera("Camera_0001", (1.5, -7.0, 4.0), (1.5, 0.0, 0.0))
    stack = explicit.box((-1.0, -1.5, 0.0), (0.0, 1.5, 2.5))
    carter = explicit.track("NovaCarter", 7, (1.5, 0.0), 0.3, 3, seed=1)
    person = explicit.track("Person", 9, (-3.0, 2.5), -1.0, 3, seed=2)
    forklift = explicit.track("Forklift", 11, (9.6, -5.0), 0.0, 3, seed=5)
    spec = explicit.spec([a, b], [carter, person, forklift], boxes=[stack])
    return _render(tmp_path_factory.mktemp("stack"), spec), spec


def test_object_hidden_behind_a_rack_has_no_visible_box(behind_stack):
    scene, _ = behind_stack
    for objects in scene.ground_truth.values():
        assert "Camera_0000" in next(o for o in objects if o.object_type == "Forklift").bbox_visible
        carter = next(o for o in objects if o.object_type == "NovaCarter")
        assert "Camera_0000" in carter.bbox_full  # in the view, amodally
        assert "Camera_0000" not in carter.bbox_visible  # but hidden
        assert "Camera_0001" in carter.bbox_visible
        person = next(o for o in objects if o.object_type == "Person")
        assert set(person.bbox_visible) == {"Camera_0000", "Camera_0001"}


def test_object_hidden_behind_a_forklift(tmp_path, explicit):
    """A NovaCarter right behind a forklift's body (forklift turned sideways, camera 1.2 m high)."""
    a = explicit.camera("Camera_0000", (-6.0, -0.5, 1.2), (4.0, -0.5, 0.3))
    b = explicit.camera("Camera_0001", (1.0, -8.0, 4.0), (1.0, -0.5, 0.0))
    forklift = explicit.track("Forklift", 1, (0.0, 0.0), math.pi / 2, 2, seed=3)
    carter = explicit.track("NovaCarter", 2, (1.0, -0.5), math.pi / 2, 2, seed=4)
    scene = _render(tmp_path, explicit.spec([a, b], [forklift, carter], frames=2))
    for objects in scene.ground_truth.values():
        by_type = {o.object_type: o for o in objects}
        assert "Camera_0000" in by_type["NovaCarter"].bbox_full
        assert "Camera_0000" not in by_type["NovaCarter"].bbox_visible
        assert "Camera_0001" in by_type["NovaCarter"].bbox_visible
        assert "Camera_0000" in by_type["Forklift"].bbox_visible


def test_depth_and_visibility_match_an_independent_cast(behind_stack, reference):
    """Depth maps (read back from the h5 files) equal the independently cast z-depth within 1 % at
    every pixel, and each object's visible pixels and box agree with the reference instance mask."""
    scene, spec = behind_stack
    calib = scene.calibration
    gt = scene.ground_truth
    for sensor in calib.sensors:
        for frame in (0, 2):
            ref_depth, ref_ids = reference(sensor, spec, frame)
            depth = scene.depth_m(sensor.id, frame).astype(np.float64)
            rel = np.abs(depth - ref_depth) / ref_depth
            # A silhouette-edge pixel may flip between float32 and float64: allow a very few.
            assert np.count_nonzero(rel > 0.01) <= 2, (sensor.id, frame, np.count_nonzero(rel > 0.01))
            for index, track in enumerate(spec.tracks):
                mask = ref_ids == index
                assert np.median(rel[mask]) < 1e-3 if mask.any() else True
                obj = next(o for o in gt[frame] if o.object_id == track.object_id)
                if mask.sum() >= 16:
                    rows, cols = np.nonzero(mask)
                    expected = [cols.min(), rows.min(), cols.max(), rows.max()]
                    assert obj.bbox_visible[sensor.id] == pytest.approx(expected, abs=1.0)
                elif mask.sum() == 0:
                    assert sensor.id not in obj.bbox_visible


def test_objects_are_drawn_where_the_reference_sees_them(behind_stack, reference):
    """The decoded video differs from the empty background where (and only near where) objects are."""
    scene, spec = behind_stack
    sensor = scene.calibration.camera("Camera_0001")
    _, ids = reference(sensor, spec, 1)
    from visionops.data.video import read_frame

    rgb = read_frame(scene.video_path("Camera_0001"), 1).astype(np.float64)
    person = ids == 1
    carter = ids == 0
    assert person.sum() > 30 and carter.sum() > 30
    # Objects are not the colour of the floor around them.
    ring = np.zeros_like(person)
    rows, cols = np.nonzero(person | carter)
    ring[max(rows.min() - 4, 0):rows.max() + 5, max(cols.min() - 4, 0):cols.max() + 5] = True
    ring &= ids < 0
    assert np.abs(rgb[person | carter].mean(axis=0) - rgb[ring].mean(axis=0)).max() > 5.0
