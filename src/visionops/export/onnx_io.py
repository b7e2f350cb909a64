"""ONNX files: export a module, stamp our metadata, check, load, with clear errors.

Exports use the dynamo exporter (``torch.export``, opset 18) with symbolic batch / camera dimensions. The older
TorchScript exporter is faster (1 s against ~15 s for the small Sparse4D) but records shape arithmetic such as
``reshape(b, k, ...)`` as constants, so a graph traced with 2 cameras silently fails (or is wrong) with 3.
Files are written atomically (temp + rename) after ``onnx.checker`` passes: a failed export leaves nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionops.atomic import write_bytes

METADATA_KEY = "visionops"
"""``metadata_props`` key holding a JSON dict: model family, classes, input size, graph constants."""


class ExportError(RuntimeError):
    """An export or an exported file that cannot be used; the message names the file and the fix."""


def export_module(module: nn.Module, args: tuple, path: str | Path, *, input_names: Sequence[str],
                  output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]],
                  metadata: Mapping[str, Any], opset: int = 18) -> Path:
    """Export ``module`` (called on ``args``) to ONNX, add ``metadata``, check, write ``path`` atomically.

    Args:
        args: example inputs in forward order, named ``input_names``.
        dynamic_axes: input name -> {axis: dimension name}; equal names are one symbolic dimension.
    """
    import onnx  # noqa: PLC0415

    dims: dict[str, Any] = {}
    shapes = []
    for name in input_names:
        axes = dynamic_axes.get(name, {})
        shapes.append({axis: dims.setdefault(label, torch.export.Dim(label, min=1, max=4096))
                       for axis, label in axes.items()} or None)
    module.eval()
    # nn.MultiheadAttention's inference fast path is one fused aten op without an ONNX translation.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter():
            warnings.simplefilter("ignore")  # the exporter's notes on unused torchvision ops and tree specs
            program = torch.onnx.export(module, args, input_names=list(input_names),
                                        output_names=list(output_names), dynamic_shapes=tuple(shapes),
                                        opset_version=opset, dynamo=True, verbose=False)
    except Exception as exc:
        raise ExportError(f"exporting {type(module).__name__} to {path} failed: {type(exc).__name__}: {exc}") \
            from exc
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(dict(metadata), sort_keys=True)
    onnx.checker.check_model(proto, full_check=True)
    return write_bytes(path, proto.SerializeToString())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress prints and INFO/WARNING logging (it reports failures as exceptions)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def load_checked(path: str | Path):
    """The ModelProto of ``path`` after ``onnx.checker``; ExportError for a missing or corrupt file."""
    import onnx  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: ONNX file not found (run `dvc repro export` or `visionops export ...`)")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ... depending on the damage
        raise ExportError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {exc}); re-export it") from None
    return proto


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Our metadata dict of an exported file (checked first)."""
    proto = load_checked(path)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ExportError(f"{path}: no '{METADATA_KEY}' metadata: not exported by visionops (re-export it)")


def inference_session(path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` on a checked file (CPU provider unless ``providers`` says otherwise)."""
    import onnxruntime as ort  # noqa: PLC0415

    load_checked(path)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    available = ort.get_available_providers()
    wanted = list(providers or ["CPUExecutionProvider"])
    missing = [p for p in wanted if p not in available]
    if missing:
        raise ExportError(f"ONNX Runtime providers {missing} are not available here (available: {available})")
    return ort.InferenceSession(str(path), options, providers=wanted)
