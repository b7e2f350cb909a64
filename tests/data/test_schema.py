import json

import numpy as np
import pytest
from factories import make_camera

from visionops.data.calibration import Calibration, world_to_map_pixels
from visionops.data.schema import (
    ObjectAnnotation,
    SchemaError,
    box_corners,
    ground_truth_from_json,
    ground_truth_to_json,
    rotation_matrix,
)

SPACED = {
    "object type": "Forklift",
    "object id": 7,
    "3d location": [1.0, 2.0, 1.1],
    "3d bounding box scale": [1.2, 2.6, 2.2],
    "3d bounding box rotation": [0.0, 0.0, 0.5],
    "2d bounding box visible": {"Camera_01": [10, 20, 30, 40]},
    "2d bounding box": {"Camera_01": [5, 20, 30, 45]},
}


def test_ground_truth_round_trip_keeps_spaced_keys_and_string_frames():
    gt = ground_truth_from_json({"0": [SPACED], "12": []})
    assert list(gt) == [0, 12]
    obj = gt[0][0]
    assert obj.object_type == "Forklift" and obj.object_id == 7 and obj.yaw == 0.5
    out = ground_truth_to_json(gt)
    assert list(out) == ["0", "12"]
    assert set(out["0"][0]) == set(SPACED)
    assert json.loads(json.dumps(out)) == out


def test_underscore_spelling_is_accepted():
    underscored = {k.replace(" ", "_"): v for k, v in SPACED.items()}
    obj = ground_truth_from_json({"3": [underscored]})[3][0]
    assert obj.object_id == 7
    np.testing.assert_allclose(obj.bbox_visible["Camera_01"], [10, 20, 30, 40])


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda o: o.pop("3d location"), "missing key '3d location'"),
        (lambda o: o.__setitem__("object id", "x7"), "key 'object id'"),
        (lambda o: o.__setitem__("3d bounding box scale", [1, 2]), "key '3d bounding box scale'"),
        (lambda o: o.__setitem__("3d bounding box scale", [1, 0, 2]), "sizes must be > 0"),
        (lambda o: o.__setitem__("2d bounding box visible", {"Camera_01": [30, 20, 10, 40]}), "xmax < xmin"),
        (lambda o: o.__setitem__("3d location", [1, float("nan"), 0]), "non-finite"),
    ],
)
def test_bad_objects_name_frame_and_key(mutate, fragment):
    obj = json.loads(json.dumps(SPACED))
    mutate(obj)
    with pytest.raises(SchemaError) as err:
        ground_truth_from_json({"5": [obj]}, "gt.json")
    assert "gt.json" in str(err.value) and "frame 5" in str(err.value) and fragment in str(err.value)


def test_non_numeric_frame_key_and_duplicate_track_rejected():
    with pytest.raises(SchemaError, match="frame key 'first'"):
        ground_truth_from_json({"first": []})
    with pytest.raises(SchemaError, match="appears twice"):
        ground_truth_from_json({"0": [SPACED, SPACED]})


def test_box_corners_and_rotation_convention():
    # yaw = 90 degrees turns local x (width) onto world y
    corners = box_corners(np.zeros(3), np.array([4.0, 2.0, 1.0]), np.array([0, 0, np.pi / 2]))
    np.testing.assert_allclose(np.ptp(corners, axis=0), [2.0, 4.0, 1.0], atol=1e-12)
    r = rotation_matrix(0.3, -0.2, 1.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(r), 1.0)


def test_calibration_round_trip_and_projection():
    cam = make_camera("Camera", [6.0, 0.0, 4.0], [0.0, 0.0, 0.0], 640, 360)
    data = Calibration(sensors=[cam, make_camera("Camera_01", [0, 6.0, 4.0], [0, 0, 0], 640, 360)]).to_json()
    # on-disk attribute values are strings: they come back as numbers
    assert all(isinstance(a["value"], str) for a in data["sensors"][0]["attributes"])
    calib = Calibration.from_json(json.loads(json.dumps(data)))
    back = calib.camera("Camera")
    assert back.width == 640 and back.height == 360 and back.fps == 30.0
    np.testing.assert_allclose(back.camera_matrix, back.intrinsic @ back.extrinsic, atol=1e-6)
    np.testing.assert_allclose(back.position, [6.0, 0.0, 4.0], atol=1e-6)
    uv, depth = back.project(np.array([[0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(uv[0], [320, 180], atol=1e-6)  # looks at the origin: principal point
    assert np.isclose(depth[0], np.sqrt(36 + 16))
    # the homography maps floor points like the full projection
    floor = np.array([1.0, -0.5, 1.0])
    hom = back.homography @ floor
    np.testing.assert_allclose(hom[:2] / hom[2], back.project(np.array([[1.0, -0.5, 0.0]]))[0][0], atol=1e-6)
    assert calib.camera_ids == ["Camera", "Camera_01"]
    with pytest.raises(KeyError, match="Camera_02"):
        calib.camera("Camera_02")


def test_calibration_errors_name_sensor_and_key():
    cam = make_camera("Camera_0003", [6.0, 0.0, 4.0], [0.0, 0.0, 0.0], 64, 48).to_json()
    cam["extrinsicMatrix"] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    with pytest.raises(SchemaError, match=r"sensor 'Camera_0003', key 'extrinsicMatrix'.*3x4"):
        Calibration.from_json({"sensors": [cam]})
    with pytest.raises(SchemaError, match="non-empty list"):
        Calibration.from_json({"sensors": []})


def test_world_to_map_pixels_flips_y():
    px = world_to_map_pixels(np.array([[0.0, 0.0], [1.0, 2.0]]), 10.0, np.array([5.0, 5.0]), 200)
    np.testing.assert_allclose(px, [[50, 150], [60, 130]])


def test_object_annotation_to_json_omits_absent_full_box():
    obj = ObjectAnnotation("Person", 1, np.zeros(3), np.ones(3), np.zeros(3))
    assert "2d bounding box" not in obj.to_json()
