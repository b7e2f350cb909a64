"""The validator passes a consistent scene and fails, naming file/key/frame, on corrupted variants."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from visionops.cli import main
from visionops.data.depth import depth_key
from visionops.data.validate import validate_scene


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _sensor(data, cam="Camera_0001"):
    return next(s for s in data["sensors"] if s["id"] == cam)


def _set_attr(sensor, name, value):
    for attr in sensor["attributes"]:
        if attr["name"] == name:
            attr["value"] = value


def _corrupt_camera_matrix(scene):
    _edit_json(scene / "calibration.json", lambda d: _sensor(d)["cameraMatrix"][0].__setitem__(0, 1234.5))


def _bad_rotation(scene):
    def edit(d):
        ext = _sensor(d)["extrinsicMatrix"]
        ext[0][0] += 0.5  # R[0][0] may be 0: add, don't scale

    _edit_json(scene / "calibration.json", edit)


def _shorter_video(scene):
    from visionops.data.video import VideoWriter

    with VideoWriter(scene / "videos" / "Camera_0001.mp4", 64, 48) as writer:
        for _ in range(2):
            writer.write(np.zeros((48, 64, 3), np.uint8))


def _depth_missing_frame(scene):
    with h5py.File(scene / "depth_maps" / "Camera_0000.h5", "a") as f:
        del f[depth_key(2)]


def _depth_wrong_dtype(scene):
    with h5py.File(scene / "depth_maps" / "Camera_0000.h5", "a") as f:
        del f[depth_key(0)]
        f.create_dataset(depth_key(0), data=np.ones((48, 64), np.float32))


def _gt_unknown_camera(scene):
    _edit_json(scene / "ground_truth.json",
               lambda d: d["1"][0]["2d bounding box visible"].__setitem__("Camera_0099", [1, 1, 5, 5]))


def _gt_frame_past_end(scene):
    def edit(d):
        d["10"] = d["0"]

    _edit_json(scene / "ground_truth.json", edit)


def _video_size_mismatch(scene):
    _edit_json(scene / "calibration.json", lambda d: _set_attr(_sensor(d), "frameWidth", "1920"))


CORRUPTIONS = {
    "missing calibration.json": (lambda s: (s / "calibration.json").unlink(), "calibration.json", "missing"),
    "calibration not JSON": (lambda s: (s / "calibration.json").write_text("{\"sensors\": [}"), "calibration.json",
                             "invalid JSON at line 1"),
    "cameraMatrix != K @ E": (_corrupt_camera_matrix, "calibration.json", "sensors[id=Camera_0001].cameraMatrix"),
    "extrinsic not a rotation": (_bad_rotation, "calibration.json", "not a proper rotation"),
    "calibrated camera has no video": (lambda s: (s / "videos" / "Camera_0001.mp4").unlink(), "Camera_0001.mp4",
                                       "has no video"),
    "video has no calibration": (lambda s: shutil.copy(s / "videos" / "Camera_0000.mp4", s / "videos" / "Camera_7.mp4"),
                                 "calibration.json", "'Camera_7' has a video but no calibration entry"),
    "frame counts differ": (_shorter_video, "videos", "different frame counts (Camera_0000: 4, Camera_0001: 2)"),
    "truncated video": (lambda s: (s / "videos" / "Camera_0000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42"),
                        "Camera_0000.mp4", "cannot read the video"),
    "video size != frameWidth": (_video_size_mismatch, "calibration.json", "frameWidth x frameHeight = 1920x48"),
    "depth file missing": (lambda s: (s / "depth_maps" / "Camera_0001.h5").unlink(), "Camera_0001.h5",
                           "has no depth file"),
    "depth frame missing": (_depth_missing_frame, "Camera_0000.h5", "distance_to_image_plane_00002.png"),
    "depth wrong dtype": (_depth_wrong_dtype, "Camera_0000.h5", "uint16"),
    "GT camera unknown": (_gt_unknown_camera, "ground_truth.json", "'Camera_0099'"),
    "GT frame past the video": (_gt_frame_past_end, "ground_truth.json", "frame 10"),
    "GT missing key": (lambda s: _edit_json(s / "ground_truth.json", lambda d: d["2"][0].pop("object type")),
                       "ground_truth.json", "frame 2"),
    "GT not JSON": (lambda s: (s / "ground_truth.json").write_text("[1, 2"), "ground_truth.json", "invalid JSON"),
    "map.png corrupt": (lambda s: (s / "map.png").write_bytes(b"not a png"), "map.png", "not a readable PNG"),
    "GT box outside image": (
        lambda s: _edit_json(
            s / "ground_truth.json",
            lambda d: d["0"][0]["2d bounding box visible"].__setitem__("Camera_0000", [10, 10, 500, 40])),
        "ground_truth.json", "outside the 64x48 image"),
}


def test_consistent_scene_is_valid(tiny_scene):
    report = validate_scene(tiny_scene, require_gt=True)
    assert report.ok, [str(f) for f in report.findings]
    assert report.cameras == ["Camera_0000", "Camera_0001"]
    assert report.frames == 4 and report.gt_objects == 4 and report.warnings == []


def test_decode_mode_counts_real_frames(tiny_scene):
    assert validate_scene(tiny_scene, decode=True).frames == 4


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_scene_fails_with_named_location(tiny_scene, name):
    corrupt, file_fragment, message_fragment = CORRUPTIONS[name]
    corrupt(tiny_scene)
    report = validate_scene(tiny_scene, require_gt=True)
    assert not report.ok, f"{name}: not detected"
    text = "\n".join(str(f) for f in report.errors)
    assert file_fragment in text and message_fragment in text, text


def test_missing_ground_truth_is_an_error_only_when_required(tiny_scene):
    (tiny_scene / "ground_truth.json").unlink()
    assert validate_scene(tiny_scene, require_gt=False).ok
    assert "missing (train/val" in str(validate_scene(tiny_scene, require_gt=True).errors[0])


def test_cli_validate_exit_codes_and_json(tiny_scene, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["data", "validate", str(tiny_scene.parent.parent)])
    assert ok.exit_code == 0, ok.output
    assert "1 of 1 scenes valid" in ok.output
    _corrupt_camera_matrix(tiny_scene)
    out = tmp_path / "report.json"
    bad = runner.invoke(main, ["data", "validate", "--json", str(out), str(tiny_scene)])
    assert bad.exit_code == 1
    assert "FAILED" in bad.output and "cameraMatrix" in bad.output
    assert json.loads(out.read_text())[0]["ok"] is False
