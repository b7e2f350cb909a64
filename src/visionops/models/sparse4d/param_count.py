"""Parameter counts of a Sparse4D configuration, per module, built on the meta device (no memory, no init cost).

``python -m visionops.models.sparse4d.param_count [preset ...]`` prints the tables.

Comparison with the model card ("7.8 x 10^7 parameters"), numbers computed with this module:

    module                                full_r101          r50     default (CPU)
    backbone (ResNet, no fc)             42,500,160   23,508,032   11,176,512
    neck (FPN)                            3,344,384    3,344,384      713,728
    depth head                                  771          771          387
    instance bank (anchors + features)      240,300      240,300       35,584
    anchor encoder                           71,392       71,392       18,800
    fc_before + fc_after (shared)           262,144      262,144       65,536
    decoder ops (all layers)             20,722,912   20,722,912    2,347,264
    total                                67,142,063   48,149,935   14,357,811

``full_r101`` has 67.1 M parameters, 10.9 M (14 %) fewer than the card's 78 M. As far as we can account for
it, the difference is TAO's slot-based camera weighting: without ``use_camera_embed`` every DFA has
``weights_fc = Linear(256 -> 8 groups * 20 cams * 4 levels * 13 points = 8320)`` = 2,138,240 parameters instead
of our ``Linear(256 -> 416)`` (106,912) plus the camera MLP (Linear 12->256, LN, Linear 256->256, LN: 70,144),
i.e. +1,961,184 per layer, +11,767,104 for 6 layers. The same config with ``use_camera_embed=False`` counts
**78,909,167** (7.89e7), 1.2 % above the card's 7.8e7 (a truncated figure, or a slightly different
variant) and far closer than ours. The card's own spec lists
``use_camera_embed: true``, so this is our best explanation, not a verified one. Other possible contributors:
TAO's timm ResNet may keep its 1000-class fc (+2,049,000), and the re-ID branch (off here; VisibilityNet 8,257
+ BNNeck 512 + 256 * num_ids) exists when trained with ``use_reid_sampling``.

Per decoder layer (full_r101): the single-frame layer 1,702,352 (DFA 247,474, FFN 920,064, LN 512, refinement
534,302); each temporal layer 3,804,112 (two 512-d attentions of 1,050,624 each, two LNs, DFA, FFN, refinement).
"""

from __future__ import annotations

import sys
from collections import defaultdict

import torch
from torch import nn

from visionops.models.sparse4d.model import Sparse4D
from visionops.models.sparse4d.presets import PRESETS, Sparse4DConfig, get_preset


def _numel(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def build_on_meta(cfg: Sparse4DConfig) -> Sparse4D:
    """The network with meta tensors: shapes and counts without memory (forward needs meta inputs)."""
    with torch.device("meta"):
        return Sparse4D(cfg)


def count_parameters(cfg: Sparse4DConfig) -> dict[str, int]:
    """Parameters per module (insertion-ordered rows, decoder ops summed by type, ``total`` last)."""
    model = build_on_meta(cfg)
    dec = model.decoder
    rows: dict[str, int] = {
        "backbone": _numel(model.backbone),
        "neck": _numel(model.neck),
        "depth_head": _numel(model.depth_head),
        "instance_bank": _numel(model.instance_bank),
        "decoder.anchor_encoder": _numel(dec.anchor_encoder),
        "decoder.fc_before+fc_after": _numel(dec.fc_before) + _numel(dec.fc_after),
    }
    ops: dict[str, int] = defaultdict(int)
    for op, layer in zip(dec.operation_order, dec.layers, strict=True):
        ops[op] += _numel(layer)
        if op == "deformable":
            for part in ("camera_encoder", "weights_fc", "kps_generator", "output_proj"):
                ops[f"deformable.{part}"] += _numel(getattr(layer, part))
    for op, n in ops.items():
        rows[f"decoder.{op}"] = n
    rows["decoder.reid"] = _numel(dec.reid)
    rows["total"] = _numel(model)
    covered = sum(n for key, n in rows.items() if key != "total" and "." not in key.removeprefix("decoder.")
                  and not key.startswith("decoder.deformable."))
    if covered != rows["total"]:  # every parameter must sit in exactly one top-level row
        raise AssertionError(f"parameter rows cover {covered} of {rows['total']}")
    return rows


def parameter_table(cfg: Sparse4DConfig, name: str = "") -> str:
    """A plain-text table of :func:`count_parameters` (sub-rows of the DFA indented)."""
    rows = count_parameters(cfg)
    lines = [f"Sparse4D {name} ({cfg.backbone}, {cfg.input_size[0]}x{cfg.input_size[1]}, "
             f"{cfg.embed_dims}-d, {cfg.num_decoder} layers)".replace("  ", " "), f"{'module':<40}{'params':>14}"]
    for key, n in rows.items():
        label = "  " + key if key.startswith("decoder.deformable.") else key
        lines.append(f"{label:<40}{n:>14,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    names = (argv if argv is not None else sys.argv[1:]) or list(PRESETS)
    for name in names:
        print(parameter_table(get_preset(name), name), end="\n\n")
    slots = get_preset("full_r101").replace(use_camera_embed=False)
    print(parameter_table(slots, "full_r101 with TAO's 20 camera slots"))


if __name__ == "__main__":
    main()
