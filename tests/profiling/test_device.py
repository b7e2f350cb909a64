"""Device names and slugs."""

from __future__ import annotations

import pytest

from visionops.profiling.device import cpu_model_name, detect_device, slugify


@pytest.mark.parametrize(("name", "slug"), [
    ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
    ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090"),
    ("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", "intel-xeon-platinum-8480-cpu-2-00ghz"),
    ("AMD EPYC 7763 64-Core Processor", "amd-epyc-7763-64-core-processor"),
    ("   ", "unknown-device"),
])
def test_slugify(name, slug):
    assert slugify(name) == slug


def test_cpu_model_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM)  i7-9750H  CPU\n")
    assert cpu_model_name(info) == "Intel(R) Core(TM) i7-9750H CPU"
    assert cpu_model_name(tmp_path / "missing")  # falls back to platform, never empty


def test_detect_cpu_device():
    device = detect_device("cpu", threads=1)
    assert device.kind == "cpu" and device.slug == slugify(device.name)
    assert device.details["versions"]["torch"] and device.details["threads_param"] == 1
    assert set(device.to_dict()) == {"kind", "name", "slug", "details"}


def test_cuda_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ValueError, match="profile.device is 'cuda'"):
        detect_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        detect_device("tpu")
