"""Saving and loading a pruned model as its pruning history + state dict (loads with ``weights_only=True``).

Loading rebuilds the unpruned architecture, replays the history on a fresh torch-pruning DependencyGraph, then
loads the weights; unlike a pickled module this needs no code from the checkpoint file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from visionops.atomic import write_bytes
from visionops.pruning.graph import as_args, plain_history, short_list, traceable


def save_pruned(
    path: str | os.PathLike,
    model: nn.Module,
    history: Sequence[Sequence[Any]],
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically write ``{"pruning_history": history, "state_dict": model.state_dict(), **extra}``.

    ``extra`` (epoch, config, class names...) must hold only tensors and plain Python values, or the file will not
    load with ``weights_only=True``. ``history`` must lead from the *unpruned* architecture to this model: after a
    second pruning round on a loaded model, pass ``checkpoint["pruning_history"] + report.pruning_history``.
    """
    extra = dict(extra or {})
    clash = sorted({"pruning_history", "state_dict"} & extra.keys())
    if clash:
        raise ValueError(f"extra must not contain the reserved keys {clash}")
    payload = {"pruning_history": plain_history(history), "state_dict": model.state_dict(), **extra}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def apply_pruning_history(
    model: nn.Module, history: Sequence[Sequence[Any]], example_inputs: torch.Tensor | Sequence[torch.Tensor]
) -> nn.Module:
    """Replay a pruning history on a freshly built *unpruned* model, in place; return it.

    Use before ``load_state_dict`` (e.g. in Lightning's ``on_load_checkpoint``). Raises ValueError naming the
    modules the model lacks, or the entry whose indices do not fit the layer.
    """
    history = plain_history(history)
    modules = dict(model.named_modules())
    missing = sorted({name for name, _, _ in history if name not in modules})
    if missing:
        raise ValueError(
            f"pruning history names modules this model does not have: {missing}; "
            "was the checkpoint made from a different architecture?"
        )
    with traceable(model):
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=as_args(example_inputs), verbose=False)
        for step, (name, is_out, idxs) in enumerate(history):
            module = modules[name]
            width = graph.get_out_channels(module) if is_out else graph.get_in_channels(module)
            if width is not None and (not idxs or min(idxs) < 0 or max(idxs) >= width or len(idxs) >= width):
                raise ValueError(
                    f"pruning history step {step} ({name}, {'out' if is_out else 'in'}-channels) removes indices "
                    f"{short_list(idxs)} from a layer with {width} channels"
                )
            try:
                graph.load_pruning_history([[name, is_out, idxs]])
            except Exception as exc:  # torch-pruning's own errors do not say which step failed
                raise ValueError(f"replaying pruning history step {step} ({name}) failed: {exc}") from exc
    return model


def load_pruned(
    path: str | os.PathLike,
    build_unpruned: Callable[[], nn.Module],
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a :func:`save_pruned` checkpoint: build, replay the history, load weights. Returns (model, checkpoint).

    The file is read with ``weights_only=True`` on the CPU. The model keeps the train/eval mode the builder gave it.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "pruning_history" not in checkpoint:
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{os.fspath(path)} is not a pruned checkpoint: it has no 'pruning_history' entry (found {keys}); "
            "load an unpruned checkpoint with model.load_state_dict instead"
        )
    if "state_dict" not in checkpoint:
        raise ValueError(f"{os.fspath(path)} has a pruning history but no 'state_dict'")
    model = build_unpruned()
    apply_pruning_history(model, checkpoint["pruning_history"], example_inputs)
    state_dict = checkpoint["state_dict"]
    expected = model.state_dict()
    for key, value in state_dict.items():
        if key in expected and expected[key].shape != value.shape:
            raise ValueError(
                f"parameter {key!r} has shape {tuple(value.shape)} in {os.fspath(path)} but "
                f"{tuple(expected[key].shape)} after replaying the pruning history; the history and weights do "
                "not belong together, or the architecture differs"
            )
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    if missing or unexpected:
        raise ValueError(
            f"state_dict in {os.fspath(path)} does not match the model: missing {short_list(missing)}, "
            f"unexpected {short_list(unexpected)}"
        )
    model.load_state_dict(state_dict)
    return model, checkpoint


def pruned_channels_summary(model: nn.Module) -> dict[str, int]:
    """``{conv module name: out_channels}`` for every Conv2d, in module order (for reports and diffs)."""
    return {name: m.out_channels for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


