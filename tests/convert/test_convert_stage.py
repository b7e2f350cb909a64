"""The conversion as a whole: frames, options, determinism, bad input, atomicity, the MLflow stage run."""

from __future__ import annotations

import errno
import shutil

import numpy as np
import pytest
from convert_factories import convert_params, max_box_error, run_conversion

from visionops.data.convert import ConversionError
from visionops.data.frame_store import FrameStore
from visionops.data.ovpkl import load_ovpkl
from visionops.data.raw import RawScene, write_calibration, write_ground_truth


def _tree(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_outputs_exist_and_frames_match_the_plan(converted):
    dirs, report, messages = converted
    assert messages == []
    for scene in ("Warehouse_000", "Warehouse_015"):
        stores = sorted((dirs.frames / scene).glob("*.h5"))
        assert [p.stem for p in stores] == ["Camera_0000", "Camera_0001", "Camera_0002"]
        with FrameStore(stores[0]) as store:
            assert store.frames == list(range(10)) and store.has_depth
            assert store.rgb(3).shape == (108, 192, 3)
    assert (dirs.ovpkl / "conversion.json").is_file()
    assert report["timing"]["camera_frames"] == 60 and report["timing"]["frames_per_second"] > 0
    assert not list(dirs.root.glob("data/.tmp-*"))


def test_conversion_is_deterministic(rendered_raw, converted, tmp_path):
    dirs, _, _ = converted
    again, _, _ = run_conversion(rendered_raw, tmp_path)
    for name in ("ovpkl", "kitti", "anchors", "frames"):
        assert _tree(getattr(again, name)) == _tree(getattr(dirs, name)), name


def test_fps_resize_and_max_frames(rendered_raw, tmp_path):
    params = convert_params(fps=15, resize=(96, 54), max_frames=7, splits=["train"])
    dirs, _, _ = run_conversion(rendered_raw, tmp_path, params, num_anchor=4)
    data = load_ovpkl(next((dirs.ovpkl / "train").glob("*.pkl")))
    assert [i["frame_idx"] for i in data["infos"]] == [0, 2, 4, 6]
    assert data["metadata"]["frame_step"] == 2 and data["metadata"]["image_size"] == [96, 54]
    with FrameStore(dirs.frames / "Warehouse_000" / "Camera_0000.h5") as store:
        assert store.frames == [0, 2, 4, 6] and store.rgb(2).shape == (54, 96, 3)
    # K is scaled with the frames: the heading test's projection check holds at the new size.
    worst, count = max_box_error(dirs, rendered_raw, negate=False, scale=(0.5, 0.5), size=(96, 54))
    assert count > 10 and worst <= 1.0
    assert not (dirs.ovpkl / "val").exists()


def test_fps_that_does_not_divide_the_source_rate_is_refused(rendered_raw, tmp_path):
    with pytest.raises(ConversionError, match=r"convert.fps=7 does not divide the source rate 30"):
        run_conversion(rendered_raw, tmp_path, convert_params(fps=7))


@pytest.mark.parametrize("mode", ["all", "random", "coverage"])
def test_bev_group_modes(rendered_raw, tmp_path, mode):
    params = convert_params(splits=["train"], bev_groups={"mode": mode, "max_cameras": 2, "group_size": [2, 3]})
    dirs, report, _ = run_conversion(rendered_raw, tmp_path, params, num_anchor=4)
    files = report["summary"]["ovpkl"]
    expected = {"all": 1, "random": 3}.get(mode)
    if expected:
        assert len(files) == expected
    else:
        assert sorted(c for f in files for c in f["cameras"]) == ["Camera_0000", "Camera_0001", "Camera_0002"]
        assert all(len(f["cameras"]) <= 2 for f in files)
    for entry in files:
        data = load_ovpkl(dirs.ovpkl / entry["file"])
        assert sorted(data["infos"][0]["cams"]) == entry["cameras"]
        assert data["metadata"]["bev_origin"] == entry["origin"]


def test_workers_give_the_same_output(rendered_raw, converted, tmp_path):
    dirs, _, _ = converted
    parallel, _, _ = run_conversion(rendered_raw, tmp_path, convert_params(workers=2))
    assert _tree(parallel.frames) == _tree(dirs.frames)
    assert _tree(parallel.ovpkl) == _tree(dirs.ovpkl)


def test_test_split_without_gt_gets_infos_without_boxes(rendered_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(rendered_raw / "val" / "Warehouse_015", raw / "test" / "Warehouse_017")
    (raw / "test" / "Warehouse_017" / "ground_truth.json").unlink()
    dirs, report, messages = run_conversion(raw, tmp_path / "out", convert_params(splits=["test"]))
    data = load_ovpkl(next((dirs.ovpkl / "test").glob("*.pkl")))
    assert len(data["infos"]) == 10 and all(len(i["gt_boxes"]) == 0 for i in data["infos"])
    assert not (dirs.kitti / "test").exists()
    assert any("no anchors" in m for m in messages)


# -- bad input: one test per case -------------------------------------------------------------------


def _previous_outputs(root):
    """Fake outputs of an earlier run, which a failed conversion must leave untouched."""
    for name in ("frames", "ovpkl", "kitti", "anchors"):
        (root / "data" / name).mkdir(parents=True)
        (root / "data" / name / "old.txt").write_text("previous run")


def _assert_untouched(root):
    for name in ("frames", "ovpkl", "kitti", "anchors"):
        assert [p.name for p in (root / "data" / name).iterdir()] == ["old.txt"], name
    assert not list((root / "data").glob(".tmp-*"))


def test_corrupt_video_names_the_file_and_frame(raw_copy, tmp_path):
    video = raw_copy / "train" / "Warehouse_000" / "videos" / "Camera_0001.mp4"
    data = bytearray(video.read_bytes())
    start = len(data) // 3
    data[start:start + len(data) // 3] = np.random.default_rng(0).integers(0, 256, len(data) // 3,
                                                                             dtype=np.uint8).tobytes()
    video.write_bytes(bytes(data))
    _previous_outputs(tmp_path)
    with pytest.raises(ConversionError, match=r"Camera_0001\.mp4.*frame \d+"):
        run_conversion(raw_copy, tmp_path)
    _assert_untouched(tmp_path)


def test_truncated_video_names_the_file(raw_copy, tmp_path):
    video = raw_copy / "train" / "Warehouse_000" / "videos" / "Camera_0002.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    _previous_outputs(tmp_path)
    with pytest.raises(ConversionError, match=r"Camera_0002\.mp4.*frame 0"):
        run_conversion(raw_copy, tmp_path)
    _assert_untouched(tmp_path)


def test_fewer_video_frames_than_gt_truncates_with_a_warning(raw_copy, tmp_path):
    scene = RawScene(raw_copy / "train" / "Warehouse_000")
    gt = scene.ground_truth
    extra = {f + 10: [o for o in objs] for f, objs in gt.items()}  # GT now annotates 20 frames, videos have 10
    write_ground_truth(scene.path, {**gt, **extra})
    dirs, report, messages = run_conversion(raw_copy, tmp_path, convert_params(splits=["train"]), num_anchor=4)
    assert any("videos have 10 frames but the GT annotates 20" in m and "truncating" in m for m in messages)
    data = load_ovpkl(next((dirs.ovpkl / "train").glob("*.pkl")))
    assert [i["frame_idx"] for i in data["infos"]] == list(range(10))


def test_camera_missing_from_calibration(raw_copy, tmp_path):
    scene = RawScene(raw_copy / "train" / "Warehouse_000")
    calibration = scene.calibration
    calibration.sensors = [s for s in calibration.sensors if s.id != "Camera_0001"]
    write_calibration(scene.path, calibration)
    with pytest.raises(ConversionError, match=r"calibration\.json: no sensor for camera\(s\) \['Camera_0001'\]"):
        run_conversion(raw_copy, tmp_path)


def test_gt_referencing_an_unknown_camera(raw_copy, tmp_path):
    scene = RawScene(raw_copy / "train" / "Warehouse_000")
    gt = scene.ground_truth
    first = next(f for f, objs in gt.items() if objs)
    gt[first][0].bbox_visible["Camera_0099"] = np.array([1.0, 1.0, 5.0, 9.0])
    write_ground_truth(scene.path, gt)
    with pytest.raises(ConversionError, match=rf"ground_truth\.json: frame {first}, object #0 .*'Camera_0099'"):
        run_conversion(raw_copy, tmp_path)


def test_empty_scene(raw_copy, tmp_path):
    for video in (raw_copy / "val" / "Warehouse_015" / "videos").glob("*.mp4"):
        video.unlink()
    with pytest.raises(ConversionError, match=r"Warehouse_015: empty scene, no videos"):
        run_conversion(raw_copy, tmp_path)


def test_no_scenes_at_all(tmp_path):
    with pytest.raises(ConversionError, match="run the download stage first"):
        run_conversion(tmp_path / "nothing", tmp_path)


@pytest.mark.parametrize("where", ["frames", "ovpkl"])
def test_disk_full_leaves_no_half_written_output(rendered_raw, tmp_path, monkeypatch, where):
    from visionops.data import frame_store, safe_pickle

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "frames":
        monkeypatch.setattr(frame_store.FrameStoreWriter, "write_rgb", full)
    else:
        monkeypatch.setattr(safe_pickle, "dump", full)
    _previous_outputs(tmp_path)
    with pytest.raises((OSError, ConversionError), match="No space left|free"):
        run_conversion(rendered_raw, tmp_path)
    _assert_untouched(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".h5", ".pkl")]


# -- the stage --------------------------------------------------------------------------------------


def test_stage_run_logs_counts_sizes_and_previews(rendered_raw, tmp_path):
    import mlflow

    from visionops.config import Params
    from visionops.pipeline import convert

    params = Params.model_validate({"data": {"raw_dir": str(rendered_raw)},
                                    "convert": {"workers": 1, "kitti": {"frame_step": 1}},
                                    "sparse4d": {"num_anchor": 8}})
    report = convert.run(params, root=tmp_path, echo=lambda m: None, show_progress=False)
    assert (tmp_path / "data" / "anchors" / "kmeans8.npy").is_file()
    runs = mlflow.search_runs(experiment_names=["data"], output_format="list",
                              filter_string="tags.`visionops.run_kind` = 'stage'")  # not the pipeline run
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    assert metrics["camera_frames"] == 60 and metrics["scenes"] == 2 and metrics["bev_groups"] >= 2
    assert metrics["bytes.frames"] > 0 and metrics["frames_per_second"] > 0
    assert metrics["kitti.train.images"] == 30
    assert metrics["kitti.val.images"] == 15  # the val split keeps every 2nd frame (val_frame_step's default)
    assert runs[0].data.params["sparse4d.num_anchor"] == "8"
    artifacts = mlflow.artifacts.list_artifacts(run_id=runs[0].info.run_id, artifact_path="previews")
    assert len(artifacts) == 3  # one per camera of the first scene
    assert report["summary"]["objects"] > 0


def test_cli_convert_reports_a_conversion_error_without_a_traceback(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from visionops.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("data: {raw_dir: nothing_here}\n")
    result = CliRunner().invoke(main, ["data", "convert", "--no-progress"])
    assert result.exit_code == 1
    assert "run the download stage first" in result.output and "Traceback" not in result.output
