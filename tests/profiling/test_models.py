"""Each model's workload on real inputs: tiny Sparse4D (frames of a raw scene) and DetectNet_v2 (KITTI images)."""

from __future__ import annotations

import numpy as np
import pytest
from profiling_helpers import DETECTNET_SIZE

from visionops.profiling.curve import PointSkipped, profile_curves
from visionops.profiling.detectnet import DetectNetWorkload, batches, load_images
from visionops.profiling.sparse4d import Sparse4DWorkload, load_frames, pick_scene, tile_cameras


@pytest.fixture(scope="module")
def sparse4d_parts(pipeline_root):
    from visionops.training.sparse4d_fit import load_sparse4d_checkpoint

    model, _ = load_sparse4d_checkpoint(pipeline_root / "models/sparse4d/model.ckpt")
    scene = pick_scene(pipeline_root / "data/raw/val")
    return model, load_frames(scene, model.cfg.input_size, 2), pipeline_root / "exports/sparse4d/model.onnx"


def test_tile_cameras_repeats_real_cameras(sparse4d_parts):
    _, frames, _ = sparse4d_parts
    frame = frames[0]
    assert frame.images.shape == (2, 3, 32, 64) and frame.images.std() > 0.1  # real pixels, not zeros
    tiles = tile_cameras(frame, 5)
    assert tiles["img"].shape == (1, 5, 3, 32, 64) and tiles["projection_mat"].shape == (1, 5, 4, 4)
    np.testing.assert_array_equal(tiles["img"][0, 4], frame.images[0])  # camera 5 = camera 1 again
    assert tiles["image_wh"].dtype == np.float32 and tiles["image_wh"][0, 0].tolist() == [64.0, 32.0]


def test_sparse4d_eager_and_onnxruntime_curves(sparse4d_parts):
    model, frames, onnx_path = sparse4d_parts
    workload = Sparse4DWorkload(frames, module=model, onnx_path=onnx_path, threads=1)
    curves = profile_curves(workload, ["pytorch", "onnxruntime_cpu", "tensorrt"], [1, 3], warmup=2, repeats=2,
                            echo=lambda m: None)
    by = {c.backend: c for c in curves}
    for name in ("pytorch", "onnxruntime_cpu"):
        assert by[name].status == "ok" and sorted(by[name].points) == [1, 3]
        assert all(s.median_ms > 0 for s in by[name].points.values())
    assert by["tensorrt"].status == "skipped" and by["tensorrt"].reason
    # the eager runs were the temporal steady state: the bank holds a cache of the stream
    assert model.instance_bank.cached_anchor is not None
    model.reset()


def test_sparse4d_graph_inputs_carry_a_real_cache(sparse4d_parts):
    from visionops.profiling.backends import make_runner

    model, frames, onnx_path = sparse4d_parts
    workload = Sparse4DWorkload(frames, module=model, onnx_path=onnx_path, threads=1)
    runner = make_runner("onnxruntime_cpu", "cpu", onnx_path=onnx_path, threads=1)
    feeds = workload.inputs("onnxruntime_cpu", runner, 3)
    assert len(feeds) == 2 and feeds[0]["img"].shape[1] == 3
    assert feeds[0]["prev_exists"].tolist() == [1.0] and feeds[0]["interval_mask"].all()
    assert feeds[0]["input_cached_feature"].shape == (1, 16, 64) and np.abs(feeds[0]["input_cached_feature"]).sum() > 0
    # a graph exported for a fixed camera count cannot time other counts: that point is skipped, with the reason
    runner.inputs = [(n, [1, 2, 3, 32, 64] if n == "img" else s, t) for n, s, t in runner.inputs]
    with pytest.raises(PointSkipped, match="exactly 2 cameras"):
        workload.inputs("onnxruntime_cpu", runner, 3)
    runner.inputs = [(n, [1, "num_cams", 3, 48, 64] if n == "img" else s, t) for n, s, t in runner.inputs]
    with pytest.raises(ValueError, match="exported for 64x48 input, the frames are 64x32"):
        workload.inputs("onnxruntime_cpu", runner, 2)


def test_pick_scene_without_scenes(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro download"):
        pick_scene(tmp_path)


def test_detectnet_real_images_and_curves(pipeline_root):
    from visionops.config import DetectNetParams
    from visionops.pipeline.detectnet import load_checkpoint_model

    net = DetectNetParams(input_size=DETECTNET_SIZE)
    images = load_images(pipeline_root / "data/kitti/val", net.classes, DETECTNET_SIZE, 3)
    assert images.shape == (3, 3, 32, 64) and images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0.05
    chunks = batches(images, 2)
    assert len(chunks) == 1 and chunks[0].shape == (2, 3, 32, 64)
    assert [c[0, 0, 0, 0] for c in batches(images, 1)] == [images[i, 0, 0, 0] for i in range(3)]
    model, _ = load_checkpoint_model(pipeline_root / "models/detectnet_v2/retrained.ckpt", net)
    workload = DetectNetWorkload(images, module=model, onnx_path=pipeline_root / "exports/detectnet_v2/model.onnx",
                                 threads=1)
    curves = profile_curves(workload, ["pytorch", "onnxruntime_cpu"], [1, 2], warmup=1, repeats=2,
                            echo=lambda m: None)
    assert [(c.backend, c.status, sorted(c.points)) for c in curves] == [("pytorch", "ok", [1, 2]),
                                                                         ("onnxruntime_cpu", "ok", [1, 2])]
    wrong = DetectNetWorkload(np.zeros((2, 3, 48, 64), np.float32), onnx_path=workload.onnx_path)
    with pytest.raises(ValueError, match=r"images are \(N, 3, 48, 64\)"):
        profile_curves(wrong, ["onnxruntime_cpu"], [1], warmup=0, repeats=1, echo=lambda m: None)
