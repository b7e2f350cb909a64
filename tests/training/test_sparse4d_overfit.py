"""Sparse4D learns: a short overfit on one synthetic 2-camera sequence (3 frames, 3 moving boxes, the pinhole
projection matrices and rectangle images of sparse4d_synthetic) drives the summed loss down by a clear factor."""

from __future__ import annotations

import torch
from sparse4d_synthetic import TINY, batch, train_in_order

from visionops.training.sparse4d_module import MATCH_RADIUS_M, Sparse4DModule, match_centres

STEPS = 80


def test_overfit_one_sequence_drops_the_loss():
    torch.manual_seed(0)
    # deterministic network (no dropout / GridMask); box terms from step 0 so the loss has a fixed set of terms
    cfg = TINY.replace(use_grid_mask=False, dfa_attn_drop=0.0, attn_dropout=0.0, ffn_dropout=0.0,
                       cls_threshold_to_reg=0.0)
    module = Sparse4DModule(cfg, lr=2e-3, backbone_lr_mult=1.0, warmup_steps=0, total_steps=STEPS)
    frames = [batch(t) for t in range(3)]
    losses, seconds = train_in_order(module, frames, STEPS)
    first, early, last = losses[0], sum(losses[3:6]) / 3, sum(losses[-5:]) / 5
    print(f"overfit: loss {first:.2f} (step 0) / {early:.2f} (steps 3-5) -> {last:.2f} (last 5 of {STEPS}) "
          f"in {seconds:.1f} s")
    assert last < first / 5 and last < early / 2, losses

    module.eval()
    module.reset_streams()
    with torch.no_grad():
        for t in range(3):  # stream the sequence once more: the last frame uses the temporal path
            out = module.model(frames[t]["images"], frames[t]["projection_mat"], frames[t]["image_wh"],
                               frames[t]["timestamp"], frames[t]["scene_ids"])
    det = module.decoder.from_outputs(out)[0]
    top = det["scores_3d"].argsort(descending=True)[:6]
    gt = frames[2]["gt_boxes"][0]
    dist = match_centres(det["boxes_3d"][top, :3].numpy(), det["labels_3d"][top].numpy(), gt[:, :3].numpy(),
                         frames[2]["gt_labels"][0].numpy())
    print(f"overfit: {len(dist)}/3 GT boxes matched within {MATCH_RADIUS_M} m by the top-6 detections, "
          f"mean centre error {dist.mean() if len(dist) else float('nan'):.2f} m")
    assert len(dist) >= 2 and dist.mean() < 1.0
