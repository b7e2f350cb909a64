"""TAO-style threshold pruning (visionops.pruning) on tiny DetectNet_v2-like networks defined here.

Expected kept counts are computed independently with TAO's rule: ``n_keep = ceil(max(#above, min(nf, n)) / pg) * pg``
capped at ``n``, where "#above" is known from how the weights were constructed.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from visionops.pruning import (
    COUPLED_TO_EXCLUDED,
    EXCLUDED,
    PRUNED,
    PruneConfig,
    equalize,
    load_pruned,
    normalize_stat,
    num_retained,
    prune_model,
    pruned_channels_summary,
    save_pruned,
)

HEADS = ("output_cov", "output_bbox")
X = torch.rand(1, 3, 64, 96)  # stride 16 -> 4 x 6 grid


# ----------------------------------------------------------------------------------------------------------------
# Tiny networks


class ProjBlock(nn.Module):
    """TAO ``all_projections`` basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN, plus a 1x1 conv-BN shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)  # TAO convs have bias *and* BN
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = nn.Conv2d(cin, cout, 1, stride)
        self.proj_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + self.proj_bn(self.proj(x)))


class IdBlock(nn.Module):
    """Basic block with an identity shortcut: its conv2 is coupled to whatever produced ``x``."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)


class Heads(nn.Module):
    def _heads(self, ch: int) -> None:
        self.output_cov = nn.Conv2d(ch, 4, 1)
        self.output_bbox = nn.Conv2d(ch, 16, 1)

    def _out(self, x):
        return torch.sigmoid(self.output_cov(x)), self.output_bbox(x)


class AllProjNet(Heads):
    """Stride-16 trunk (stem /2, blocks /2 /2 /2 /1), every block with a projection shortcut."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, 1)
        self.stem_bn = nn.BatchNorm2d(32)
        self.block1 = ProjBlock(32, 32, 2)
        self.block2 = ProjBlock(32, 48, 2)
        self.block3 = ProjBlock(48, 64, 2)
        self.block4 = ProjBlock(64, 64, 1)
        self._heads(64)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        return self._out(self.block4(self.block3(self.block2(self.block1(x)))))


class IdentityNet(Heads):
    """stem -> id -> id -> proj(/2) -> id.

    Two residual chains, each one coupled group: {stem, b1.conv2, b2.conv2} and {b3.conv2, b3.proj, b4.conv2}.
    """

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, 1)
        self.stem_bn = nn.BatchNorm2d(32)
        self.block1 = IdBlock(32)
        self.block2 = IdBlock(32)
        self.block3 = ProjBlock(32, 48, 2)
        self.block4 = IdBlock(48)
        self._heads(48)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        return self._out(self.block4(self.block3(self.block2(self.block1(x)))))


class ChainNet(nn.Module):
    """conv_a -> BN -> ReLU -> conv_b -> BN -> ReLU -> output_cov: no coupling, for the rounding rules.

    With ``aux_head`` a second output reads conv_a directly and is returned *first*, which makes torch-pruning's
    graph list conv_a's group before conv_b's (a producer before its consumer).
    """

    def __init__(self, n: int = 40, m: int = 16, aux_head: bool = False):
        super().__init__()
        self.conv_a = nn.Conv2d(3, n, 3, 1, 1)
        self.bn_a = nn.BatchNorm2d(n)
        self.conv_b = nn.Conv2d(n, m, 3, 1, 1)
        self.bn_b = nn.BatchNorm2d(m)
        self.output_cov = nn.Conv2d(m, 4, 1)
        self.output_aux = nn.Conv2d(n, 4, 1) if aux_head else None

    def forward(self, x):
        a = torch.relu(self.bn_a(self.conv_a(x)))
        out = self.output_cov(torch.relu(self.bn_b(self.conv_b(a))))
        return out if self.output_aux is None else (self.output_aux(a), out)


# ----------------------------------------------------------------------------------------------------------------
# Helpers


def _bn_after(model: nn.Module, conv_name: str) -> nn.BatchNorm2d:
    mods = dict(model.named_modules())
    prefix, _, leaf = conv_name.rpartition(".")
    bn_leaf = {"stem": "stem_bn", "conv1": "bn1", "conv2": "bn2", "proj": "proj_bn", "conv_a": "bn_a", "conv_b": "bn_b"}
    return mods[f"{prefix}.{bn_leaf[leaf]}" if prefix else bn_leaf[leaf]]


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN affine parameters and running stats, like a trained model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


def sparsify(model: nn.Module, conv_name: str, idxs, scale: float = 0.01) -> None:
    """Imitate L1-driven collapse of filters ``idxs``: kernel, bias and BN gamma x0.01, BN beta and mean 0.

    A collapsed filter's activation is then ~1e-4 of a live one, so removing it barely changes the outputs.
    """
    conv = dict(model.named_modules())[conv_name]
    bn = _bn_after(model, conv_name)
    idxs = torch.as_tensor(sorted(idxs), dtype=torch.long)
    with torch.no_grad():
        conv.weight[idxs] *= scale
        conv.bias[idxs] *= scale
        bn.weight[idxs] *= scale
        bn.bias[idxs] = 0.0
        bn.running_mean[idxs] = 0.0  # a ~0 channel has a ~0 batch mean


def set_filter_norms(conv: nn.Conv2d, norms, seed: int = 0) -> None:
    """Random kernel directions with exactly the given per-output-filter L2 norms."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(conv.weight.shape, generator=g)
    scale = torch.as_tensor(norms, dtype=torch.float32) / w.flatten(1).norm(dim=1)
    w = w * scale[:, None, None, None]
    with torch.no_grad():
        conv.weight.copy_(w)


def tao_keep(n_above: int, n: int, pg: int = 8, nf: int = 16) -> int:
    return min(math.ceil(max(n_above, min(nf, n)) / pg) * pg, n)


def pruned_indices(report) -> dict[str, list[int]]:
    """{conv name: removed root-space indices} for every producer of every pruned group, from the history."""
    groups: dict[int, list[str]] = {}
    for row in report.layers:
        groups.setdefault(row.group, []).append(row.name)
    out = {}
    for name, is_out, idxs in report.pruning_history:
        assert is_out
        members = next(names for names in groups.values() if name in names)
        for member in members:
            out[member] = sorted(idxs)
    return out


def random_subset(n: int, k: int, seed: int) -> list[int]:
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist())


def outputs(model, x=X):
    model.eval()
    with torch.no_grad():
        return model(x)


def sparsified_allproj(seed: int = 0):
    """AllProjNet with ~40% collapsed filters per prunable conv; returns (model, {conv: low set}, {group: convs})."""
    torch.manual_seed(seed)
    model = AllProjNet()
    randomize_bn(model, seed)
    low: dict[str, list[int]] = {}
    low["stem"] = random_subset(32, 12, seed + 1)
    widths = {"block1": 32, "block2": 48, "block3": 64, "block4": 64}
    for b, (name, n) in enumerate(widths.items()):
        k = round(0.4 * n)
        low[f"{name}.conv1"] = random_subset(n, k, seed + 10 + b)
        shared = random_subset(n, k, seed + 20 + b)  # conv2 and projection collapse together, so union removes them
        low[f"{name}.conv2"] = low[f"{name}.proj"] = shared
    for conv, idxs in low.items():
        sparsify(model, conv, idxs)
    return model, low


# ----------------------------------------------------------------------------------------------------------------
# Pure functions


def test_num_retained_matches_tao_rule():
    assert num_retained(3, 40, 8, 16) == 16  # min-filters floor
    assert num_retained(17, 40, 8, 16) == 24  # rounded up to the granularity
    assert num_retained(24, 40, 8, 16) == 24  # already a multiple
    assert num_retained(37, 40, 8, 16) == 40  # capped at n
    assert num_retained(2, 12, 8, 16) == 12  # floor is min(16, n), rounding capped at n
    assert num_retained(17, 40, 1, 16) == 17


def test_normalize_and_equalize_hand_values():
    stat = torch.tensor([1.0, 2.0, 2.0, 4.0], dtype=torch.float64)
    assert torch.allclose(normalize_stat(stat, "max"), torch.tensor([0.25, 0.5, 0.5, 1.0], dtype=torch.float64))
    # ||stat|| = 5 -> stat / 5 * 4
    assert torch.allclose(normalize_stat(stat, "L2"), torch.tensor([0.8, 1.6, 1.6, 3.2], dtype=torch.float64))
    assert torch.equal(normalize_stat(torch.zeros(3, dtype=torch.float64), "max"), torch.zeros(3, dtype=torch.float64))

    s = torch.tensor([[0.9, 0.02, 0.15], [0.1, 0.5, 0.04]], dtype=torch.float64)
    assert torch.allclose(equalize(s, "union"), torch.tensor([0.9, 0.5, 0.15], dtype=torch.float64))
    assert torch.allclose(equalize(s, "intersection"), torch.tensor([0.1, 0.02, 0.04], dtype=torch.float64))
    assert torch.allclose(equalize(s, "arithmetic_mean"), torch.tensor([0.5, 0.26, 0.095], dtype=torch.float64))
    assert torch.allclose(equalize(s, "geometric_mean"), torch.sqrt(s[0] * s[1]))
    # NaN = member does not cover that filter: left out of the combination.
    s_nan = torch.tensor([[0.3, float("nan")], [0.1, 0.7]], dtype=torch.float64)
    assert torch.allclose(equalize(s_nan, "intersection"), torch.tensor([0.1, 0.7], dtype=torch.float64))
    assert torch.allclose(equalize(s_nan, "arithmetic_mean"), torch.tensor([0.2, 0.7], dtype=torch.float64))


def test_config_validation():
    with pytest.raises(ValueError, match="normalizer"):
        PruneConfig(normalizer="L1")
    with pytest.raises(ValueError, match="equalization"):
        PruneConfig(equalization="max")
    with pytest.raises(ValueError, match="granularity"):
        PruneConfig(granularity=0)
    with pytest.raises(ValueError, match="min_num_filters"):
        PruneConfig(min_num_filters=0)
    with pytest.raises(TypeError):
        PruneConfig(excluded_layers="block1.conv1")


# ----------------------------------------------------------------------------------------------------------------
# (a) all-projection net: sparsified phase-1 model


def test_allproj_prunes_exactly_the_collapsed_filters():
    model, low = sparsified_allproj()
    heads_before = {h: dict(model.named_modules())[h].weight.detach().clone() for h in HEADS}
    before = pruned_channels_summary(model)
    ref_cov, ref_bbox = outputs(model)

    report = prune_model(model, X, PruneConfig(threshold=0.1), output_layers=HEADS)

    after = pruned_channels_summary(model)
    removed = pruned_indices(report)
    for conv, idxs in low.items():
        n = before[conv]
        expected = tao_keep(n - len(idxs), n)
        assert after[conv] == expected, conv
        # Only collapsed filters go; rounding keeps (expected - #above) of them.
        assert set(removed[conv]) <= set(idxs), conv
        assert len(removed[conv]) == n - expected, conv
        assert _bn_after(model, conv).num_features == expected
    assert after["block1.conv2"] == 24 and after["block2.conv2"] == 32 and after["block3.conv2"] == 40
    # conv2 and the projection of a block are one group: identical keep-sets.
    for b in ("block1", "block2", "block3", "block4"):
        assert removed[f"{b}.conv2"] == removed[f"{b}.proj"]
        rows = {r.name: r for r in report.layers}
        assert rows[f"{b}.conv2"].group == rows[f"{b}.proj"].group != rows[f"{b}.conv1"].group

    # Heads: out-channels and their kept input slices untouched.
    mods = dict(model.named_modules())
    kept_in = [i for i in range(64) if i not in set(removed["block4.conv2"])]
    for h in HEADS:
        assert mods[h].out_channels == before[h]
        assert torch.equal(mods[h].weight, heads_before[h][:, kept_in])
    assert {r.name: r.status for r in report.layers}["output_cov"] == EXCLUDED

    cov, bbox = outputs(model)
    assert cov.shape == ref_cov.shape == (1, 4, 4, 6) and bbox.shape == ref_bbox.shape == (1, 16, 4, 6)
    assert (cov - ref_cov).abs().max() < 1e-3
    assert (bbox - ref_bbox).abs().max() < 1e-3


def test_scores_use_original_kernels_and_modes_are_restored():
    """conv_b's filters 0..7 read only conv_a's collapsed channels: scored after input pruning they would vanish."""
    torch.manual_seed(1)
    model = ChainNet(n=16, m=16, aux_head=True)
    low_a = list(range(8, 16))
    set_filter_norms(model.conv_a, [1.0] * 8 + [0.01] * 8)
    w = torch.randn_like(model.conv_b.weight)
    w[:8, :8] = 0.0  # filters 0..7 live entirely on the channels conv_a loses
    w[8:] *= 0.5 / w[8:].flatten(1).norm(dim=1)[:, None, None, None]
    w[:8] *= 1.0 / w[:8].flatten(1).norm(dim=1)[:, None, None, None]
    with torch.no_grad():
        model.conv_b.weight.copy_(w)
    model.train()
    model.bn_a.eval()  # a frozen BN must stay frozen
    model.conv_a.bias.requires_grad_(False)
    running = model.bn_b.running_mean.clone()

    config = PruneConfig(granularity=1, min_num_filters=1)
    report = prune_model(model, X, config, output_layers=["output_cov", "output_aux"])

    assert [r.name for r in report.layers] == ["conv_a", "conv_b", "output_cov", "output_aux"]
    assert model.conv_a.out_channels == 8 and pruned_indices(report)["conv_a"] == low_a
    assert model.conv_b.out_channels == 16  # all of conv_b survives: original norms 1.0 / 0.5
    assert model.training and model.bn_b.training and not model.bn_a.training
    assert not model.conv_a.bias.requires_grad and model.conv_a.weight.requires_grad
    assert torch.equal(model.bn_b.running_mean, running)  # tracing ran in eval mode


# ----------------------------------------------------------------------------------------------------------------
# Equalisation


A_B_PATTERN = [  # (conv2 norm, projection norm): chosen so the four criteria disagree
    (0.9, 0.8),  # both high: kept by all
    (0.9, 0.02),  # union/mean/geo keep (geo 0.134), intersection drops
    (0.02, 0.9),
    (0.02, 0.03),  # both low: dropped by all
    (0.15, 0.04),  # union keeps; intersection, mean (0.095), geo (0.077) drop
    (0.5, 0.005),  # union, mean (0.2525) keep; intersection, geo (0.05) drop
    (0.3, 0.3),
    (0.05, 0.6),
]


@pytest.mark.parametrize("criterion", ["union", "intersection", "arithmetic_mean", "geometric_mean"])
def test_equalization_of_conv2_and_projection(criterion):
    torch.manual_seed(2)
    model = AllProjNet()
    pairs = [(1.0, 1.0)] + [A_B_PATTERN[i % len(A_B_PATTERN)] for i in range(31)]  # filter 0 = each layer's max
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    set_filter_norms(model.block1.conv2, a, seed=3)
    set_filter_norms(model.block1.proj, b, seed=4)
    merged = {
        "union": np.maximum(a, b),
        "intersection": np.minimum(a, b),
        "arithmetic_mean": (a + b) / 2,
        "geometric_mean": np.sqrt(a * b),
    }[criterion]
    expected_removed = [i for i in range(32) if merged[i] <= 0.1]
    if criterion == "union":
        assert expected_removed == [i for i in range(32) if a[i] <= 0.1 and b[i] <= 0.1]
    if criterion == "intersection":
        assert expected_removed == [i for i in range(32) if a[i] <= 0.1 or b[i] <= 0.1]

    config = PruneConfig(equalization=criterion, granularity=1, min_num_filters=1)
    report = prune_model(model, X, config, output_layers=HEADS)

    removed = pruned_indices(report)
    assert removed["block1.conv2"] == removed["block1.proj"] == expected_removed
    n_keep = 32 - len(expected_removed)
    assert model.block1.conv2.out_channels == model.block1.proj.out_channels == n_keep
    assert model.block1.bn2.num_features == model.block1.proj_bn.num_features == n_keep
    assert model.block2.conv1.in_channels == model.block2.proj.in_channels == n_keep
    assert {r.name: r.above_threshold for r in report.layers}["block1.proj"] == n_keep
    assert [o.shape for o in outputs(model)] == [(1, 4, 4, 6), (1, 16, 4, 6)]


# ----------------------------------------------------------------------------------------------------------------
# (b) identity shortcuts: a chain coupled across blocks


def test_identity_chain_shares_one_keep_set():
    torch.manual_seed(3)
    model = IdentityNet()
    randomize_bn(model, 3)
    common = random_subset(32, 13, 5)
    rest = [i for i in range(32) if i not in common]
    only_stem, only_b2 = rest[:4], rest[4:8]
    sparsify(model, "stem", common + only_stem)
    sparsify(model, "block1.conv2", common)
    sparsify(model, "block2.conv2", common + only_b2)
    chain2 = random_subset(48, 19, 6)
    for conv in ("block3.conv2", "block3.proj", "block4.conv2"):
        sparsify(model, conv, chain2)
    ref = outputs(model)

    report = prune_model(model, X, PruneConfig(), output_layers=HEADS)

    rows = {r.name: r for r in report.layers}
    assert rows["stem"].group == rows["block1.conv2"].group == rows["block2.conv2"].group
    assert rows["block3.conv2"].group == rows["block3.proj"].group == rows["block4.conv2"].group
    assert rows["stem"].group != rows["block3.conv2"].group
    assert rows["block1.conv1"].group not in (rows["stem"].group, rows["block3.conv2"].group)
    removed = pruned_indices(report)
    # Union: a channel of the chain goes only if *every* member collapsed it; the stem-only / block2-only ones stay.
    n_keep = tao_keep(32 - len(common), 32)
    assert set(removed["stem"]) <= set(common) and len(removed["stem"]) == 32 - n_keep
    assert removed["stem"] == removed["block1.conv2"] == removed["block2.conv2"]
    for name in ("stem", "block1.conv2", "block2.conv2"):
        assert dict(model.named_modules())[name].out_channels == n_keep == 24
    assert model.block1.conv1.in_channels == model.block3.proj.in_channels == 24
    n_keep2 = tao_keep(48 - 19, 48)
    assert set(removed["block4.conv2"]) <= set(chain2) and model.block4.conv2.out_channels == n_keep2 == 32
    assert model.output_cov.in_channels == n_keep2

    out = outputs(model)
    for o, r in zip(out, ref, strict=True):
        assert o.shape == r.shape
        assert (o - r).abs().max() < 1e-3


# ----------------------------------------------------------------------------------------------------------------
# Rounding, exclusion, normaliser


@pytest.mark.parametrize(
    ("n", "n_above", "pg", "nf", "expected"),
    [
        (40, 3, 8, 16, 16),  # min-filters floor
        (40, 17, 8, 16, 24),  # round up to granularity
        (40, 24, 8, 16, 24),  # exact multiple
        (40, 37, 8, 16, 40),  # cap at n
        (12, 2, 8, 16, 12),  # floor min(16, 12) = 12, rounding 16 capped to 12: nothing pruned
        (40, 17, 1, 16, 17),  # granularity 1
        (40, 5, 4, 10, 12),  # floor 10 -> 12
    ],
)
def test_granularity_and_min_filters(n, n_above, pg, nf, expected):
    torch.manual_seed(4)
    model = ChainNet(n=n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n_above)).tolist()
    above, below = perm[:n_above], perm[n_above:]
    norms = torch.empty(n)
    norms[above] = 1.0 - 0.01 * torch.arange(n_above)
    norms[below] = 0.08 - 0.001 * torch.arange(n - n_above)  # distinct, all < 0.1 of the max (1.0)
    set_filter_norms(model.conv_a, norms)

    report = prune_model(model, X, PruneConfig(granularity=pg, min_num_filters=nf), output_layers=["output_cov"])

    assert model.conv_a.out_channels == expected
    # Kept = every above-threshold filter plus the strongest sub-threshold ones (rounding survivors).
    survivors = set(above) | set(below[: expected - n_above])
    assert set(range(n)) - set(pruned_indices(report).get("conv_a", [])) == survivors
    assert {r.name: r.above_threshold for r in report.layers}["conv_a"] == n_above


def test_excluded_layers_are_respected():
    model, low = sparsified_allproj(seed=5)
    before = pruned_channels_summary(model)
    config = PruneConfig(excluded_layers=("block1.conv1", "block2.conv2", "block3"))

    report = prune_model(model, X, config, output_layers=HEADS)

    after = pruned_channels_summary(model)
    for name in ("block1.conv1", "block2.conv2", "block2.proj", "block3.conv1", "block3.conv2", "block3.proj"):
        assert after[name] == before[name], name
    status = {r.name: r.status for r in report.layers}
    assert status["block1.conv1"] == status["block2.conv2"] == status["block3.conv1"] == EXCLUDED
    assert status["block2.proj"] == COUPLED_TO_EXCLUDED  # shares the add with an excluded conv
    assert status["block1.conv2"] == status["block2.conv1"] == status["stem"] == PRUNED
    assert after["block2.conv1"] == tao_keep(48 - len(low["block2.conv1"]), 48)

    with pytest.raises(ValueError, match="block9.conv1"):
        prune_model(AllProjNet(), X, PruneConfig(excluded_layers=("block9.conv1",)), output_layers=HEADS)
    with pytest.raises(ValueError, match="head_cov"):
        prune_model(AllProjNet(), X, PruneConfig(), output_layers=["head_cov"])


@pytest.mark.parametrize(("normalizer", "kept"), [("max", [3]), ("L2", [1, 2, 3])])
def test_normalizer_hand_example(normalizer, kept):
    # norms [1, 2, 2, 4]: max -> [.25, .5, .5, 1]; L2 -> norms / 5 * 4 = [.8, 1.6, 1.6, 3.2]. Threshold 0.9.
    torch.manual_seed(6)
    model = ChainNet(n=4)
    set_filter_norms(model.conv_a, [1.0, 2.0, 2.0, 4.0])
    config = PruneConfig(threshold=0.9, normalizer=normalizer, granularity=1, min_num_filters=1)
    report = prune_model(model, X, config, output_layers=["output_cov"])
    assert model.conv_a.out_channels == len(kept)
    assert sorted(set(range(4)) - set(pruned_indices(report)["conv_a"])) == kept


# ----------------------------------------------------------------------------------------------------------------
# Save / load


def test_save_load_round_trip_weights_only(tmp_path):
    model, _ = sparsified_allproj(seed=7)
    report = prune_model(model, X, PruneConfig(), output_layers=HEADS)
    path = tmp_path / "ckpt" / "pruned.pt"
    save_pruned(path, model, report.pruning_history, {"epoch": 3, "classes": ["car", "person"]})
    assert [p.name for p in path.parent.iterdir()] == ["pruned.pt"]  # no temporaries left behind

    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain lists: the safe loader accepts it
    assert raw["pruning_history"] == report.pruning_history

    loaded, ckpt = load_pruned(path, AllProjNet, X)
    assert ckpt["epoch"] == 3 and ckpt["classes"] == ["car", "person"]
    assert pruned_channels_summary(loaded) == pruned_channels_summary(model)
    for a, b in zip(outputs(loaded), outputs(model), strict=True):
        assert torch.equal(a, b)


def test_second_pruning_round_appends_to_the_history(tmp_path):
    """A later round's indices refer to the already-pruned widths, so its history is appended, not substituted."""
    model, _ = sparsified_allproj(seed=10)
    first = prune_model(model, X, PruneConfig(), output_layers=HEADS)
    save_pruned(tmp_path / "round1.pt", model, first.pruning_history)
    loaded, ckpt = load_pruned(tmp_path / "round1.pt", AllProjNet, X)
    second = prune_model(loaded, X, PruneConfig(threshold=0.7, granularity=4), output_layers=HEADS)
    assert second.params_after < second.params_before == first.params_after
    save_pruned(tmp_path / "round2.pt", loaded, ckpt["pruning_history"] + second.pruning_history)
    again, _ = load_pruned(tmp_path / "round2.pt", AllProjNet, X)
    for a, b in zip(outputs(again), outputs(loaded), strict=True):
        assert torch.equal(a, b)


def test_load_errors(tmp_path):
    model, _ = sparsified_allproj(seed=8)
    unpruned_sd = {k: v.clone() for k, v in model.state_dict().items()}
    report = prune_model(model, X, PruneConfig(), output_layers=HEADS)

    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": unpruned_sd}, plain)
    with pytest.raises(ValueError, match="not a pruned checkpoint"):
        load_pruned(plain, AllProjNet, X)

    foreign = tmp_path / "foreign.pt"
    save_pruned(foreign, model, report.pruning_history)
    with pytest.raises(ValueError, match=r"block1\.proj"):  # IdentityNet has no projection in block1
        load_pruned(foreign, IdentityNet, X)
    bogus = tmp_path / "bogus.pt"
    save_pruned(bogus, model, [["nope.conv", True, [0]], *report.pruning_history])
    with pytest.raises(ValueError, match=r"nope\.conv"):
        load_pruned(bogus, AllProjNet, X)

    out_of_range = tmp_path / "range.pt"
    save_pruned(out_of_range, model, [["stem", True, [999]]])
    with pytest.raises(ValueError, match="step 0 .*stem"):
        load_pruned(out_of_range, AllProjNet, X)

    # History of the pruned model but the unpruned weights: the first mismatching parameter is named.
    mismatch = tmp_path / "mismatch.pt"
    torch.save({"pruning_history": report.pruning_history, "state_dict": unpruned_sd}, mismatch)
    pruned_sd = model.state_dict()
    first_bad = next(k for k, v in unpruned_sd.items() if v.shape != pruned_sd[k].shape)
    with pytest.raises(ValueError, match=f"parameter '{first_bad}' has shape"):
        load_pruned(mismatch, AllProjNet, X)

    with pytest.raises(ValueError, match="reserved"):
        save_pruned(tmp_path / "x.pt", model, report.pruning_history, {"state_dict": {}})


# ----------------------------------------------------------------------------------------------------------------
# Report


def test_report_numbers_and_rendering():
    model, _ = sparsified_allproj(seed=9)
    params_unpruned = sum(p.numel() for p in model.parameters())
    report = prune_model(model, X, PruneConfig(), output_layers=HEADS)

    assert report.params_before == params_unpruned
    assert report.params_after == sum(p.numel() for p in model.parameters()) < report.params_before
    assert report.macs_after < report.macs_before
    assert report.ratio == pytest.approx(report.params_after / report.params_before)
    assert 0 < report.ratio < 1

    summary = pruned_channels_summary(model)
    assert {r.name: r.filters_after for r in report.layers} == summary
    assert len(report.layers) == len(summary) == 15  # stem + 4 x 3 block convs + 2 heads

    md = report.to_markdown()
    assert len(report.pruned_layers) == 13
    for row in report.pruned_layers:
        assert f"| {row.name} | {row.group} | {row.filters_before} | {row.filters_after} |" in md
    data = json.loads(report.to_json())
    assert data["ratio"] == pytest.approx(report.ratio)
    assert data["pruning_history"] == report.pruning_history
    assert data["config"]["output_layers"] == list(HEADS)
    assert all(isinstance(i, int) for _, _, idxs in report.pruning_history for i in idxs)
    assert os.fspath(json.dumps(report.to_dict()))  # plain JSON types throughout
