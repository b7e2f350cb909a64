"""DetectNet_v2 (GridBox) model, targets and post-processing."""
