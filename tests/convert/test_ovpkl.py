"""OVPKL content: TAO's fields, the BEV recentring, the heading convention, velocities and visibility."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from convert_factories import max_box_error

from visionops.data import safe_pickle
from visionops.data.ovpkl import CAMERA_KEYS, INFO_KEYS, bev_to_world, load_infos, load_ovpkl, world_to_bev
from visionops.data.raw import RawScene


def _pkls(dirs, split="train"):
    files = sorted((dirs.ovpkl / split).glob("*.pkl"))
    assert files, f"no OVPKL files for {split}"
    return files


def _gt_lookup(raw, split, scene):
    return RawScene(raw / split / scene).ground_truth


def test_fields_are_exactly_taos(converted):
    dirs, _, _ = converted
    for split in ("train", "val"):
        for pkl in _pkls(dirs, split):
            data = load_ovpkl(pkl)
            meta = data["metadata"]
            assert meta["version"] == "2025" and meta["split_type"] == split
            assert meta["schema_version"] == "aicity_ovpkl/v1" and "Person" in meta["class_names"]
            assert len(meta["bev_origin"]) == 3 and meta["bev_origin"][2] == 0.0
            scene, group = meta["scene"], meta["group"]["name"]
            assert pkl.name == f"{scene}+{group}_infos_{split}.pkl"
            assert [i["frame_idx"] for i in data["infos"]] == list(range(10))
            for info in data["infos"]:
                assert tuple(info) == INFO_KEYS
                n = len(info["gt_boxes"])
                assert info["scene_name"] == f"{scene}+{group}" and info["group_name"] == group
                assert info["token"] == f"{scene}+{group}__{info['frame_idx']:09d}"
                assert info["timestamp"] == pytest.approx(info["frame_idx"] / 30.0)
                assert info["gt_boxes"].shape == (n, 7) and info["gt_velocity"].shape == (n, 3)
                assert info["instance_inds"].dtype == np.int64 and info["asset_inds"].dtype == np.int64
                assert info["valid_flag"].dtype == bool and len(info["gt_names"]) == n
                assert len(info["gt_visibility"]) == n
                assert np.all(info["gt_boxes"][:, 6] >= -math.pi) and np.all(info["gt_boxes"][:, 6] < math.pi)
                assert sorted(info["cams"]) == sorted(meta["group"]["cameras"])
                for cam, entry in info["cams"].items():
                    assert tuple(entry) == CAMERA_KEYS
                    h5, key = entry["data_path"]
                    assert h5 == f"data/frames/{scene}/{cam}.h5" and key == f"rgb/rgb_{info['frame_idx']:05d}.jpg"
                    assert entry["depth_map_path"] == (
                        h5, f"distance_to_image_plane_png/distance_to_image_plane_{info['frame_idx']:05d}.png")
                    assert entry["sample_data_token"] == f"{info['token']}+{cam}"
                    assert entry["cam_intrinsic"].shape == (3, 3)
                    assert entry["sensor2world_transform"].shape == (4, 4)


def test_boxes_map_back_to_the_world_gt(converted, rendered_raw):
    dirs, _, _ = converted
    checked = 0
    for pkl in _pkls(dirs):
        data = load_ovpkl(pkl)
        origin = data["metadata"]["bev_origin"]
        gt = _gt_lookup(rendered_raw, "train", data["metadata"]["scene"])
        for info in data["infos"]:
            world = bev_to_world(info["gt_boxes"], origin)
            np.testing.assert_allclose(world_to_bev(world, origin), info["gt_boxes"])
            by_id = {(o.object_type, o.object_id): o for o in gt[info["frame_idx"]]}
            for row, name, oid in zip(world, info["gt_names"], info["instance_inds"], strict=True):
                obj = by_id[(str(name), int(oid))]
                np.testing.assert_allclose(row[:3], obj.location, atol=1e-9)
                np.testing.assert_allclose(row[3:6], obj.scale)
                assert math.isclose(math.remainder(row[6] - obj.yaw, 2 * math.pi), 0.0, abs_tol=1e-9)
                checked += 1
    assert checked > 20


def test_heading_convention_reproduces_every_2d_box_within_1px(converted, rendered_raw):
    """The decision (heading = GT yaw, not TAO's -yaw) proven on the renderer's amodal boxes: the OVPKL box,
    projected with the OVPKL camera matrices, lands on the GT '2d bounding box'; negated, it does not."""
    dirs, _, _ = converted
    worst, count = max_box_error(dirs, rendered_raw, negate=False)
    assert count > 30
    assert worst <= 1.0
    negated_worst, _ = max_box_error(dirs, rendered_raw, negate=True)
    assert negated_worst > 3.0


def test_velocity_is_the_frame_difference_times_fps(converted, rendered_raw):
    dirs, _, _ = converted
    moving = 0
    for pkl in _pkls(dirs):
        data = load_ovpkl(pkl)
        gt = _gt_lookup(rendered_raw, "train", data["metadata"]["scene"])
        for info in data["infos"]:
            f = info["frame_idx"]
            before = {(o.object_type, o.object_id): o.location for o in gt.get(f - 1, [])}
            for v, name, oid in zip(info["gt_velocity"], info["gt_names"], info["instance_inds"], strict=True):
                now = next(o.location for o in gt[f] if (o.object_type, o.object_id) == (str(name), int(oid)))
                expected = (now - before[(str(name), int(oid))]) * 30.0 if (str(name), int(oid)) in before else 0
                np.testing.assert_allclose(v, expected, atol=1e-9)
                moving += bool(np.linalg.norm(v) > 0.1)
    assert moving > 0


def test_visibility_and_dropping_follow_the_group_cameras(converted, rendered_raw):
    dirs, _, _ = converted
    for pkl in _pkls(dirs):
        data = load_ovpkl(pkl)
        cams = data["metadata"]["group"]["cameras"]
        gt = _gt_lookup(rendered_raw, "train", data["metadata"]["scene"])
        for info in data["infos"]:
            visible_somewhere = [o for o in gt[info["frame_idx"]] if any(c in o.bbox_visible for c in cams)]
            assert len(info["gt_boxes"]) == len(visible_somewhere)
            for vis, name, oid in zip(info["gt_visibility"], info["gt_names"], info["instance_inds"], strict=True):
                obj = next(o for o in gt[info["frame_idx"]] if (o.object_type, o.object_id) == (str(name), int(oid)))
                assert sorted(vis) == sorted(cams)
                for cam, value in vis.items():
                    if cam not in obj.bbox_visible:
                        assert value == 0.0
                    else:
                        v, fb = obj.bbox_visible[cam], obj.bbox_full[cam]
                        ratio = (v[2] - v[0]) * (v[3] - v[1]) / ((fb[2] - fb[0]) * (fb[3] - fb[1]))
                        assert value == pytest.approx(min(ratio, 1.0))


def test_asset_ids_are_unique_per_object_and_listed(converted):
    import json

    dirs, _, _ = converted
    index = json.loads((dirs.ovpkl / "object_ids.json").read_text())
    assert sorted(index.values()) == list(range(len(index)))
    infos, _ = load_infos(dirs.ovpkl / "train")
    seen = {}
    for info in infos:
        for asset, oid, name in zip(info["asset_inds"], info["instance_inds"], info["gt_names"], strict=True):
            assert seen.setdefault(int(asset), (int(oid), str(name))) == (int(oid), str(name))


def test_load_infos_sorts_by_scene_and_time(converted):
    dirs, _, _ = converted
    infos, metadata = load_infos(dirs.ovpkl / "train")
    keys = [(i["scene_name"], i["timestamp"]) for i in infos]
    assert keys == sorted(keys) and set(metadata) == {i["scene_name"] for i in infos}


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil_infos_train.pkl"
    path.write_bytes(pickle.dumps({"metadata": {}, "infos": [_Evil()]}, protocol=4))
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"evil_infos_train\.pkl: refusing to load .*system"):
        load_ovpkl(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_admits_numpy_and_containers(tmp_path, protocol):
    obj = {"a": np.arange(6.0).reshape(2, 3), "b": np.array(["x", "yy"]), "c": np.array([True]),
           "d": np.int64(3), "e": (1, "s", None), "f": {1, 2}, "g": [np.float32(1.5)]}
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = safe_pickle.load(path)
    np.testing.assert_array_equal(back["a"], obj["a"])
    assert back["b"].tolist() == ["x", "yy"] and back["e"] == (1, "s", None) and back["f"] == {1, 2}


def test_truncated_pickle_is_a_clear_error(converted, tmp_path):
    dirs, _, _ = converted
    src = _pkls(dirs)[0]
    broken = tmp_path / src.name
    broken.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(pickle.UnpicklingError, match="truncated or corrupt"):
        load_ovpkl(broken)


def test_wrong_structure_is_named(tmp_path):
    from visionops.data.ovpkl import OvpklError

    path = tmp_path / "x.pkl"
    safe_pickle.dump(path, {"metadata": {"version": "2025", "split_type": "train"}, "infos": [{"frame_idx": 0}]})
    with pytest.raises(OvpklError, match=r"x\.pkl: infos\[0\] lacks keys"):
        load_ovpkl(path)


def test_cli_summarises_an_ovpkl_file_and_refuses_an_unsafe_one(converted, tmp_path):
    from click.testing import CliRunner

    from visionops.cli import main

    dirs, _, _ = converted
    pkl = _pkls(dirs)[0]
    result = CliRunner().invoke(main, ["data", "ovpkl", str(pkl), "--frame", "3"])
    assert result.exit_code == 0, result.output
    assert "split train, version 2025, 10 frames, 3 cameras" in result.output
    assert "token: Warehouse_000+bev-sensor-coverage-0__000000003" in result.output
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"metadata": {}, "infos": [_Evil()]}, protocol=4))
    result = CliRunner().invoke(main, ["data", "ovpkl", str(evil)])
    assert result.exit_code == 1 and "refusing to load" in result.output
