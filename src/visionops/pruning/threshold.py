"""TAO-style threshold channel pruning of Conv2d filters, built on torch-pruning's DependencyGraph.

Semantics follow TAO's ``prune`` ("min_weight", ``core/pruning/pruning.py``; brief section 5a):

1. For every Conv2d that is not excluded, score each output filter by the L2 norm of its *original*
   kernel over ``(c_in, kh, kw)``; biases and BatchNorm are ignored. All scores are taken before
   anything is pruned, so a layer's score never sees its input channels shrink.
2. Normalise the scores within the layer: ``max`` -> ``stat / max(stat)``; ``L2`` ->
   ``stat / ||stat||_2 * len(stat)``.
3. Convs whose outputs must keep the same channels (the inputs of a residual add, found by torch-pruning's
   dependency graph) form one group; their normalised scores are combined element-wise (``union`` = max,
   ``intersection`` = min, ``arithmetic_mean``, ``geometric_mean``) and the group shares one keep-set.
4. ``n_keep = #(stat > threshold)``; ``n_keep = max(n_keep, min(min_num_filters, n))``; round ``n_keep`` up to
   a multiple of ``granularity`` and cap at ``n``; keep the top-``n_keep`` filters by stat.
5. torch-pruning slices the convs' out-channels, the following BNs and the consumers' in-channels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from visionops.pruning.graph import History, as_args, plain_history, traceable

Normalizer = Literal["max", "L2"]
Equalization = Literal["union", "intersection", "arithmetic_mean", "geometric_mean"]
NORMALIZERS = ("max", "L2")
EQUALIZATIONS = ("union", "intersection", "arithmetic_mean", "geometric_mean")

# Row statuses of the per-layer report.
PRUNED = "pruned"  # filters were removed
KEPT = "kept"  # scored, but every filter survived (all above threshold, or rounding kept them)
EXCLUDED = "excluded"  # named in excluded_layers / output_layers
COUPLED_TO_EXCLUDED = "coupled_to_excluded"  # shares a keep-set with an excluded conv, so it cannot shrink either
UNSUPPORTED = "unsupported"  # coupled to a non-Conv2d producer (Linear, ConvTranspose...) this scorer does not rank



@dataclass
class PruneConfig:
    """TAO ``prune`` options (same names/defaults as the CLI flags ``-pth -n -eq -pg -nf -el``).

    ``excluded_layers`` are module names (as in ``model.named_modules()``); naming a container excludes every
    Conv2d inside it. Output heads are passed separately to :func:`prune_model` and are always excluded.
    """

    threshold: float = 0.1
    normalizer: Normalizer = "max"
    equalization: Equalization = "union"
    granularity: int = 8
    min_num_filters: int = 16
    excluded_layers: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {self.normalizer!r}")
        if self.equalization not in EQUALIZATIONS:
            raise ValueError(f"equalization must be one of {EQUALIZATIONS}, got {self.equalization!r}")
        if int(self.granularity) < 1:
            raise ValueError(f"granularity must be >= 1, got {self.granularity}")
        # TAO would accept 0 and then remove every filter of a layer with nothing above threshold, which leaves a
        # zero-width tensor; require at least one survivor instead.
        if int(self.min_num_filters) < 1:
            raise ValueError(f"min_num_filters must be >= 1, got {self.min_num_filters}")
        if not np.isfinite(self.threshold) or self.threshold < 0:
            raise ValueError(f"threshold must be a finite number >= 0, got {self.threshold}")
        if isinstance(self.excluded_layers, str):  # a bare string would be iterated character by character
            raise TypeError("excluded_layers must be a sequence of module names, not a single string")
        self.excluded_layers = tuple(self.excluded_layers)


@dataclass
class LayerPruneRow:
    """One Conv2d of the report.

    ``group`` numbers the dependency groups (convs sharing a keep-set have the same number). ``above_threshold``
    is the group's count of merged stats > threshold (None when the group was not scored); ``kept`` is the
    number of output filters kept, i.e. ``filters_after`` unless something else changed the layer.
    """

    name: str
    group: int | None
    filters_before: int
    filters_after: int
    above_threshold: int | None
    kept: int
    status: str


@dataclass
class PruneReport:
    """What :func:`prune_model` did. ``ratio`` = params_after / params_before (TAO's "pruning ratio")."""

    config: dict[str, Any]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    layers: list[LayerPruneRow] = field(default_factory=list)
    pruning_history: History = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.params_after / self.params_before if self.params_before else 1.0

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    @property
    def pruned_layers(self) -> list[LayerPruneRow]:
        return [row for row in self.layers if row.status == PRUNED]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["macs_ratio"] = self.macs_ratio
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self) -> str:
        lines = [
            f"Params: {self.params_before:,} -> {self.params_after:,} (ratio {self.ratio:.4f}); "
            f"MACs: {self.macs_before:,} -> {self.macs_after:,} (ratio {self.macs_ratio:.4f})",
            "",
            "| layer | group | filters before | filters after | above threshold | status |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for row in self.layers:
            group = "" if row.group is None else str(row.group)
            above = "" if row.above_threshold is None else str(row.above_threshold)
            lines.append(
                f"| {row.name} | {group} | {row.filters_before} | {row.filters_after} | {above} | {row.status} |"
            )
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Scoring (pure functions, float64)


def filter_norms(conv: nn.Conv2d) -> torch.Tensor:
    """Per-output-filter L2 norm of ``conv.weight`` over ``(c_in/groups, kh, kw)``: shape ``(out_channels,)``, f64."""
    return conv.weight.detach().to(device="cpu", dtype=torch.float64).flatten(1).norm(dim=1)


def normalize_stat(stat: torch.Tensor, normalizer: str) -> torch.Tensor:
    """Layer-wise normalisation of a ``(n,)`` stat vector (TAO ``normalize_stat``).

    An all-zero layer stays all zeros (TAO would produce NaNs there, which then never pass the threshold anyway).
    """
    if normalizer == "max":
        denom = stat.max()
    elif normalizer == "L2":
        denom = stat.norm() / len(stat)
    else:
        raise ValueError(f"unknown normalizer {normalizer!r}")
    return stat / denom if denom > 0 else torch.zeros_like(stat)


def equalize(stats: torch.Tensor, criterion: str) -> torch.Tensor:
    """Combine ``(k, n)`` normalised stats of k coupled convs into one ``(n,)`` vector.

    NaN marks a filter a member does not cover (only possible with index-remapping ops such as concat inside a
    group) and is left out of that filter's combination.
    """
    nan = torch.isnan(stats)
    if criterion == "union":
        return stats.masked_fill(nan, -torch.inf).amax(dim=0)
    if criterion == "intersection":
        return stats.masked_fill(nan, torch.inf).amin(dim=0)
    if criterion == "arithmetic_mean":
        return stats.nanmean(dim=0)
    if criterion == "geometric_mean":
        # log(0) = -inf -> exp(-inf) = 0, like TAO's np.exp(np.mean(np.log(...))).
        return stats.log().nanmean(dim=0).exp()
    raise ValueError(f"unknown equalization criterion {criterion!r}")


def num_retained(n_above: int, n: int, granularity: int, min_num_filters: int) -> int:
    """TAO's filter count: ``max(n_above, min(min_num_filters, n))`` rounded up to ``granularity``, capped at n."""
    keep = max(n_above, min(min_num_filters, n))
    if keep % granularity:
        keep += granularity - keep % granularity
    return min(keep, n)


def retained_indices(stat: torch.Tensor, config: PruneConfig) -> list[int]:
    """Sorted indices of the filters to keep for a merged ``(n,)`` stat vector.

    Ties are broken towards the lower index (stable sort) so the result is deterministic.
    """
    n = len(stat)
    n_above = int((stat > config.threshold).sum())
    keep = num_retained(n_above, n, config.granularity, config.min_num_filters)
    order = np.argsort(-stat.numpy(), kind="stable")
    return sorted(int(i) for i in order[:keep])


# ----------------------------------------------------------------------------------------------------------------
# Pruning


@dataclass
class _GroupPlan:
    index: int
    root: nn.Module
    handler: Callable
    producers: list[str]  # names of the convs whose output filters this group removes
    status: str
    excluded: set[str] = field(default_factory=set)  # producers named in excluded/output layers themselves
    n_above: int | None = None
    keep: list[int] | None = None
    prune: list[int] = field(default_factory=list)


def prune_model(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    config: PruneConfig | None,
    output_layers: Sequence[str],
) -> PruneReport:
    """Prune ``model``'s Conv2d filters in place with TAO's threshold algorithm; return what was done.

    Args:
        model: the trained (phase-1, L1-sparsified) network. Its train/eval modes and ``requires_grad`` flags are
            restored afterwards; pruned parameters are new tensors, so rebuild any optimizer.
        example_inputs: one input batch, e.g. ``(1, 3, H, W)`` float (or a tuple of forward args), used to trace
            the graph and to count MACs.
        config: thresholds and rounding (``None`` -> TAO defaults).
        output_layers: module names of the heads (``output_cov``, ``output_bbox``); always excluded so the
            output channel layout never changes.
    """
    config = config or PruneConfig()
    if isinstance(output_layers, str):
        raise TypeError("output_layers must be a sequence of module names, not a single string")
    inputs = as_args(example_inputs)
    excluded = _resolve_excluded(model, [*output_layers, *config.excluded_layers])
    names = {module: name for name, module in model.named_modules()}

    with traceable(model):
        macs_before, params_before = tp.utils.count_ops_and_params(model, inputs)
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs, verbose=False)
        # Exclusions are handled here rather than via get_all_groups(ignored_layers=...), which silently drops a
        # group with an excluded member; we want those convs listed in the report with the reason.
        groups = list(graph.get_all_groups(ignored_layers=[], root_module_types=[nn.Conv2d]))

        # Pass 1: score every group on the original weights. Nothing is pruned until all keep-sets are known.
        plans = [_plan_group(i, group, graph, names, excluded, config) for i, group in enumerate(groups)]
        filters_before = {name: m.out_channels for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}

        # Pass 2: prune. Out-channel pruning of one group only touches other groups' *input* channels, so the
        # root-space indices computed in pass 1 stay valid.
        for plan in plans:
            if not plan.prune:
                continue
            group = graph.get_pruning_group(plan.root, plan.handler, plan.prune)
            if not graph.check_pruning_group(group):  # only if a layer would lose every channel
                raise RuntimeError(f"pruning group {plan.index} ({', '.join(plan.producers)}) would empty a layer")
            group.prune()

        macs_after, params_after = tp.utils.count_ops_and_params(model, inputs)

    modules = dict(model.named_modules())
    order = {name: i for i, name in enumerate(modules)}
    # Rows in module order; groups renumbered by their first conv in that order (the graph's own order is not).
    member_of = {name: plan for plan in plans for name in plan.producers}
    group_ids: dict[int, int] = {}
    rows = []
    for name in sorted(member_of, key=order.__getitem__):
        plan = member_of[name]
        group = group_ids.setdefault(plan.index, len(group_ids))
        after = modules[name].out_channels
        status = plan.status
        if status in (PRUNED, KEPT):
            status = PRUNED if after < filters_before[name] else KEPT
        elif name in plan.excluded:
            status = EXCLUDED
        rows.append(LayerPruneRow(name, group, filters_before[name], after, plan.n_above, after, status))

    cfg = asdict(config)
    cfg["excluded_layers"] = list(config.excluded_layers)
    cfg["output_layers"] = list(output_layers)
    return PruneReport(
        config=cfg,
        params_before=int(params_before),
        params_after=int(params_after),
        macs_before=int(macs_before),
        macs_after=int(macs_after),
        layers=rows,
        pruning_history=plain_history(graph.pruning_history()),
    )


def _plan_group(
    index: int,
    group: Any,
    graph: tp.DependencyGraph,
    names: dict[nn.Module, str],
    excluded: set[nn.Module],
    config: PruneConfig,
) -> _GroupPlan:
    """Decide the keep-set of one dependency group (all indices in the root conv's channel space)."""
    root = group[0].dep.target.module
    n = root.out_channels
    # Producers = members whose *output* channels the group removes. Norm/activation pruners use one function
    # for in- and out-channels, so "out but not in" singles out convs/linears (and skips BN etc.).
    producers = []
    for item in group:
        handler = item.dep.handler
        if graph.is_out_channel_pruning_fn(handler) and not graph.is_in_channel_pruning_fn(handler):
            producers.append(item)
    plan = _GroupPlan(index, root, group[0].dep.handler, [names[item.dep.target.module] for item in producers], KEPT)

    modules = [item.dep.target.module for item in producers]
    if any(m in excluded for m in modules):
        # TAO likewise keeps every channel of an element-wise group with an excluded input.
        plan.status = COUPLED_TO_EXCLUDED
        plan.excluded = {names[m] for m in modules if m in excluded}
        return plan
    if not all(isinstance(m, nn.Conv2d) for m in modules):
        plan.status = UNSUPPORTED
        return plan

    stats = torch.full((len(producers), n), torch.nan, dtype=torch.float64)
    for row, item in enumerate(producers):
        # Normalise over the whole layer, then pick this group's filters and map them to root indices.
        layer_stat = normalize_stat(filter_norms(item.dep.target.module), config.normalizer)
        stats[row, list(item.root_idxs)] = layer_stat[list(item.idxs)]
    merged = equalize(stats, config.equalization)
    plan.n_above = int((merged > config.threshold).sum())
    plan.keep = retained_indices(merged, config)
    kept = set(plan.keep)
    plan.prune = [i for i in range(n) if i not in kept]
    plan.status = PRUNED if plan.prune else KEPT
    return plan


def _resolve_excluded(model: nn.Module, layer_names: Sequence[str]) -> set[nn.Module]:
    """Conv2d modules named (directly or as a container) in ``layer_names``; unknown names are an error."""
    modules = dict(model.named_modules())
    missing = [name for name in layer_names if name not in modules]
    if missing:
        raise ValueError(f"excluded/output layers not found in the model: {missing}")
    excluded = set()
    for name in layer_names:
        excluded.update(m for m in modules[name].modules() if isinstance(m, nn.Conv2d))
    return excluded


