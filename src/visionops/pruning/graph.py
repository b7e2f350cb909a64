"""Helpers shared by pruning and by replaying a pruning history: torch-pruning's tracing, plain histories."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

History = list[list[Any]]  # [[module_name: str, is_out_channel_pruning: bool, indices: list[int]], ...]


def as_args(example_inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple:
    # torch-pruning calls model(*example_inputs): a bare tensor would be unpacked along the batch dimension.
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    return tuple(example_inputs)


@contextlib.contextmanager
def traceable(model: nn.Module) -> Iterator[None]:
    """Eval mode + autograd on for tracing; restore modes and ``requires_grad`` (by name) afterwards.

    Eval: torch-pruning's trace runs a forward, which in train mode would update BN running stats (and it calls
    ``model.eval()`` itself without restoring). Grad: the trace follows ``grad_fn``s, which frozen parameters or
    an outer ``no_grad`` would remove. Names, not objects: pruning replaces the Parameter objects.
    """
    modes = {name: m.training for name, m in model.named_modules()}
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            yield
    finally:
        for name, m in model.named_modules():
            m.training = modes.get(name, m.training)
        for name, p in model.named_parameters():
            p.requires_grad_(grads.get(name, True))


def plain_history(history: Any) -> History:
    """``[[str, bool, [int, ...]], ...]``: only types that ``torch.load(weights_only=True)`` and JSON accept."""
    plain = []
    for entry in history:
        if not isinstance(entry, (list, tuple)) or len(entry) != 3:
            raise ValueError(f"malformed pruning-history entry {entry!r}: expected [module_name, is_out, indices]")
        name, is_out, idxs = entry
        plain.append([str(name), bool(is_out), [int(i) for i in idxs]])
    return plain


def short_list(items: Sequence[Any], limit: int = 8) -> str:
    items = list(items)
    return str(items) if len(items) <= limit else f"{items[:limit]} ... ({len(items)} in all)"
