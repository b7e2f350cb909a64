"""Profiling fixtures: one CPU thread (the machine is shared), tiny models exported once per session."""

from __future__ import annotations

import pytest
import torch
from profiling_helpers import DETECTNET_SIZE, TINY_SPARSE4D
from torch import nn


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class TinyNet(nn.Module):
    """(N, 3, H, W) -> ((N, 2, H/2, W/2) sigmoid, (N, 4, H/2, W/2)): the shape of a detector head, in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.cov = nn.Conv2d(8, 2, 1)
        self.bbox = nn.Conv2d(8, 4, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.conv(images))
        return torch.sigmoid(self.cov(x)), self.bbox(x)


@pytest.fixture(scope="session")
def tiny_net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="session")
def tiny_onnx(tiny_net, tmp_path_factory):
    """TinyNet exported with torch.onnx directly (dynamic batch), as the export stage would."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    torch.onnx.export(tiny_net, (torch.rand(2, 3, 16, 32),), str(path), input_names=["input_1"],
                      output_names=["cov", "bbox"], dynamic_axes={"input_1": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    return path




@pytest.fixture(scope="session")
def pipeline_root(tmp_path_factory):
    """A repository-like folder with everything the profile stage reads, built from tiny models:

    data/raw/val/Warehouse_015 (2 cameras, 4 frames), data/kitti/val (4 toy images), the two checkpoints in the
    training stages' formats, and their ONNX exports made with the export code (visionops.export).
    """
    from detectnet_factories import toy_kitti
    from factories import make_scene

    from visionops.export.detectnet_onnx import export_detectnet_onnx
    from visionops.export.sparse4d_onnx import export_sparse4d_onnx
    from visionops.models.detectnet_v2.model import DetectNetV2
    from visionops.models.sparse4d.model import Sparse4D
    from visionops.models.sparse4d.presets import DEFAULT
    from visionops.training.sparse4d_module import config_to_dict

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("profile_repo")
    make_scene(root / "data/raw/val/Warehouse_015", frames=4, width=96, height=64)
    toy_kitti(root / "data/kitti/val", count=4)

    cfg = DEFAULT.replace(**TINY_SPARSE4D)
    sparse4d = Sparse4D(cfg).eval()
    (root / "models/sparse4d").mkdir(parents=True)
    torch.save({"hyper_parameters": {"model": config_to_dict(cfg),
                                     "meta": {"preset": "tiny", "input_size": list(cfg.input_size)}},
                "state_dict": {f"model.{k}": v for k, v in sparse4d.state_dict().items()}},
               root / "models/sparse4d/model.ckpt")
    export_sparse4d_onnx(sparse4d, root / "exports/sparse4d/model.onnx", num_cameras=2)

    from visionops.config import DetectNetParams

    classes = DetectNetParams().classes
    detectnet = DetectNetV2(len(classes), arch="resnet18", all_projections=True).eval()
    (root / "models/detectnet_v2").mkdir(parents=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in detectnet.state_dict().items()}},
               root / "models/detectnet_v2/retrained.ckpt")
    export_detectnet_onnx(detectnet, root / "exports/detectnet_v2/model.onnx", DETECTNET_SIZE, class_names=classes)
    return root


@pytest.fixture
def profile_params():
    """Params for the tiny pipeline: few sizes and repeats, every backend requested (the GPU ones skip here)."""
    from visionops.config import Params

    params = Params()
    params.detectnet_v2.input_size = DETECTNET_SIZE
    prof = params.profile
    prof.repeats, prof.warmup, prof.threads = 2, 1, 1
    prof.backends = ["pytorch", "onnxruntime_cpu", "onnxruntime_cuda", "tensorrt"]
    prof.sparse4d.cameras, prof.sparse4d.frames = [1, 3], 2
    prof.detectnet_v2.batch_sizes, prof.detectnet_v2.images = [1, 2], 3
    return params
