"""Object content and motion of the synthetic scenes (simulation only, no rendering)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from visionops.data.schema import CLASS_NAMES_2025
from visionops.data.synthetic.agents import wrap_angle
from visionops.data.synthetic.classes import CLASS_SPECS
from visionops.data.synthetic.population import choose_classes, sample_instance
from visionops.data.synthetic.scene import build_scene_spec, scene_name, scene_seed, simulate_ground_truth
from visionops.data.synthetic.shading import rect_distance


@pytest.fixture(scope="module")
def default_specs(params_factory):
    """The scenes of the default dataset (15 train + 2 val), simulated, not rendered."""
    params = params_factory()
    return [build_scene_spec(params, split, i) for split, n in params.scenes.items() for i in range(n)]


def test_every_class_in_the_default_dataset_ground_truth(params_factory):
    params = params_factory()
    seen = Counter()
    for split, n in params.scenes.items():
        for i in range(n):
            gt = simulate_ground_truth(params, split, i)
            seen.update({o.object_type for objs in gt.values() for o in objs})
    assert set(seen) == set(CLASS_NAMES_2025)


def test_person_is_the_most_common_class(default_specs):
    counts = Counter(t.cls for spec in default_specs for t in spec.tracks)
    assert counts.most_common(1)[0][0] == "Person"
    lo, hi = (6, 10)
    assert all(lo <= len(spec.tracks) <= hi for spec in default_specs)


def test_ids_unique_per_scene_and_boxes_sane(default_specs):
    for spec in default_specs:
        ids = [t.object_id for t in spec.tracks]
        assert len(ids) == len(set(ids))
        for t in spec.tracks:
            size = np.array(CLASS_SPECS[t.cls].size)
            assert np.all(np.abs(t.instance.scale / size - 1) < 0.3)
            # Parts stay inside the GT box at every gait phase.
            for phase in np.linspace(0, 2 * np.pi, 9):
                lo, hi = t.instance.parts_at(phase)
                half = t.instance.scale / 2 + 1e-9
                assert np.all(lo >= -half) and np.all(hi <= half)


def test_objects_enter_and_leave_in_the_default_dataset(default_specs):
    entered = left = 0
    for spec in default_specs:
        for t in spec.tracks:
            p = t.present.astype(int)
            entered += int(np.any(np.diff(p) > 0))
            left += int(np.any(np.diff(p) < 0))
    assert entered >= 1 and left >= 1


def test_speed_heading_and_displacement_agree(default_specs):
    """Displacement between frames = speed * dt along the heading; speeds, accelerations and turn
    rates stay within the class limits, except rare emergency stops (speed to exactly 0 in one frame) that
    the simulator makes rather than drive one body into another."""
    emergency, track_frames = 0, 0
    for spec in default_specs:
        dt = 1.0 / spec.fps
        for t in spec.tracks:
            cls = CLASS_SPECS[t.cls]
            both = t.present[1:] & t.present[:-1]  # consecutive frames in the scene
            disp = np.diff(t.xy, axis=0)[both]
            dist = np.linalg.norm(disp, axis=1)
            assert dist == pytest.approx(t.speed[1:][both] * dt, abs=1e-9)
            moving = dist > 1e-4
            heading = np.arctan2(disp[moving, 1], disp[moving, 0])
            assert np.abs(wrap_angle(heading - t.yaw[1:][both][moving])).max(initial=0) < 1e-6
            assert t.speed.max() <= cls.cruise_speed[1] + 1e-9
            accel = np.abs(np.diff(t.speed)[both]) / dt
            harsh = accel > 2 * cls.max_accel + 1e-6
            assert (t.speed[1:][both][harsh] == 0).all(), f"{spec.name} {t.cls}: harsh change that is not a stop"
            emergency += int(harsh.sum())
            track_frames += int(both.sum())
            turn = np.abs(wrap_angle(np.diff(t.yaw)[both])) / dt
            assert turn.max(initial=0) <= cls.max_turn_rate + 1e-6
    assert emergency <= 1e-3 * track_frames, (emergency, track_frames)  # default data: 2 in 7,199


def test_objects_stay_clear_of_racks(default_specs):
    """Footprint centres keep most of the class clearance from rack rows and clutter."""
    for spec in default_specs:
        obstacles = spec.layout.obstacles
        for t in spec.tracks:
            xy = t.xy[t.present]
            if len(xy) == 0 or len(obstacles) == 0:
                continue
            d = rect_distance(xy[:, 0], xy[:, 1], obstacles)
            assert d.min() >= 0.5 * t.instance.scale[1] - 0.05, t.cls


def test_ground_truth_matches_tracks(params_factory):
    params = params_factory(frames=30)
    spec = build_scene_spec(params, "train", 0)
    gt = simulate_ground_truth(params, "train", 0)
    assert sorted(gt) == list(range(30))
    for f, objs in gt.items():
        present = [t for t in spec.tracks if t.present[f]]
        assert [o.object_id for o in objs] == sorted(t.object_id for t in present)
        for o in objs:
            track = next(t for t in spec.tracks if t.object_id == o.object_id)
            assert o.location[2] == pytest.approx(o.scale[2] / 2)
            assert o.rotation[:2].tolist() == [0.0, 0.0] and -math.pi <= o.rotation[2] <= math.pi
            assert o.location[:2] == pytest.approx(track.xy[f])


def test_simulation_is_deterministic_and_seed_dependent(params_factory):
    a = build_scene_spec(params_factory(frames=20), "train", 1)
    b = build_scene_spec(params_factory(frames=20), "train", 1)
    c = build_scene_spec(params_factory(frames=20, seed=7), "train", 1)
    assert [t.cls for t in a.tracks] == [t.cls for t in b.tracks]
    assert all(np.array_equal(x.xy, y.xy) for x, y in zip(a.tracks, b.tracks, strict=True))
    assert not np.array_equal(a.layout.floor_min, c.layout.floor_min)


def test_splits_are_independent_and_named_like_the_real_data(params_factory):
    only_train = build_scene_spec(params_factory(scenes={"train": 2}, frames=5), "train", 1)
    more = params_factory(scenes={"train": 2, "val": 1, "test": 2}, frames=5)
    with_val = build_scene_spec(more, "train", 1)
    assert np.array_equal(only_train.layout.floor_min, with_val.layout.floor_min)
    assert np.array_equal(only_train.tracks[0].xy, with_val.tracks[0].xy)
    scenes = {"train": 2, "val": 1, "test": 2}
    assert [scene_name(scenes, "train", i) for i in range(2)] == ["Warehouse_000", "Warehouse_001"]
    assert scene_name(scenes, "val", 0) == "Warehouse_015"
    assert scene_name(scenes, "test", 1) == "Warehouse_018"
    # val and test keep the real names (AI City scene ids); train scenes past 15 continue after Warehouse_020
    big = {"train": 17, "val": 2, "test": 5}
    names = [scene_name(big, split, i) for split in ("train", "val", "test") for i in range(big[split])]
    assert names[14:17] == ["Warehouse_014", "Warehouse_021", "Warehouse_022"]
    assert names[17:19] == ["Warehouse_015", "Warehouse_016"]
    assert names[19:] == ["Warehouse_017", "Warehouse_018", "Warehouse_019", "Warehouse_020", "Warehouse_023"]
    assert len(set(names)) == len(names)
    with pytest.raises(ValueError, match="unknown splits"):
        scene_name({"train": 1, "dev": 1}, "train", 0)
    assert scene_seed(0, "train", 0, 1).entropy != scene_seed(0, "val", 0, 1).entropy


def test_class_choice_rotates_rare_classes():
    classes = list(CLASS_NAMES_2025)
    rng = np.random.default_rng(0)
    first = set(choose_classes(rng, classes, 6, 0))
    second = set(choose_classes(rng, classes, 6, 1))
    assert first | second == set(classes)
    assert choose_classes(rng, ["Person"], 4, 3) == ["Person"] * 4
    with pytest.raises(ValueError):
        choose_classes(rng, ["Robot"], 2, 0)


def test_instances_vary():
    rng = np.random.default_rng(3)
    people = [sample_instance(rng, "Person") for _ in range(10)]
    colours = {tuple(np.round(p.colour[0], 3)) for p in people}
    assert len(colours) > 5
    assert len({round(p.scale[2], 3) for p in people}) == 10


def test_objects_do_not_interpenetrate(default_specs):
    from shapely.geometry import Polygon

    for spec in default_specs:
        for f in range(0, spec.frames, 2):
            feet = [Polygon(t.corners(f)[[0, 2, 6, 4], :2]) for t in spec.tracks if t.present[f]]
            for i, a in enumerate(feet):
                for b in feet[i + 1:]:
                    assert a.intersection(b).area < 1e-3, f"{spec.name} frame {f}"
