"""The device being profiled: a name and a file-name slug (``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``).

Reports are stored per device (``reports/profile/<model>/<slug>.json``), so results of different machines sit side
by side and never overwrite each other.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def slugify(name: str) -> str:
    """Lower-case ASCII slug of a device name: trademarks dropped, every other run of characters -> ``-``.

    >>> slugify("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz")
    'intel-xeon-platinum-8480-cpu-2-00ghz'
    """
    text = re.sub(r"\((r|tm|c)\)", " ", name.lower())
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text or "unknown-device"


def cpu_model_name(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU model (``model name`` of /proc/cpuinfo on Linux, else what :mod:`platform` knows)."""
    path = Path(cpuinfo)
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass
class DeviceInfo:
    """Where the numbers were measured.

    Attributes:
        kind: ``cuda`` or ``cpu``.
        name: GPU name (``torch.cuda.get_device_name``) or CPU model.
        slug: :func:`slugify` of ``name``; the report file stem.
        details: software versions, CPU count, thread count, GPU memory (for the JSON report).
    """

    kind: str
    name: str
    slug: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _versions() -> dict[str, str]:
    import importlib.metadata as md  # noqa: PLC0415

    out = {"python": platform.python_version()}
    for package in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return out


def detect_device(device: str = "auto", threads: int = 0) -> DeviceInfo:
    """Describe the device the profile runs on.

    Args:
        device: ``auto`` (CUDA when torch sees a GPU), ``cpu`` or ``cuda``.
        threads: intra-op threads in use (0 = library default), recorded for CPU numbers.

    Raises:
        ValueError: unknown ``device``, or ``cuda`` requested where torch sees no GPU.
    """
    import torch  # noqa: PLC0415

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("profile.device is 'cuda' but torch sees no CUDA GPU; use -S profile.device=cpu or auto")
    details: dict[str, Any] = {"versions": _versions(), "cpu": cpu_model_name(), "cpu_count": os.cpu_count(),
                               "torch_threads": torch.get_num_threads(), "threads_param": threads,
                               "platform": platform.platform()}
    if use_cuda:
        props = torch.cuda.get_device_properties(0)
        name = torch.cuda.get_device_name(0)
        details.update(gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                       capability=f"{props.major}.{props.minor}")
        return DeviceInfo("cuda", name, slugify(name), details)
    name = details["cpu"]
    return DeviceInfo("cpu", name, slugify(name), details)
