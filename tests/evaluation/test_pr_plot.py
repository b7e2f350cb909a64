import numpy as np

from visionops.evaluation.kpi import evaluate_detections
from visionops.evaluation.pr_plot import plot_pr_curves


def test_pr_figure_has_a_panel_per_model_and_skips_classes_without_gt(tmp_path):
    gt = [np.array([[10, 10, 50, 80, 0], [100, 20, 140, 90, 0]], dtype=float)]
    good = [np.array([[10, 10, 50, 80, 0.9, 0], [100, 20, 140, 90, 0.8, 0], [200, 5, 230, 40, 0.4, 0]], dtype=float)]
    bad = [np.array([[60, 60, 90, 90, 0.9, 0]], dtype=float)]
    results = {name: evaluate_detections(dets, gt, ["person", "forklift"], score_threshold=0.5)
               for name, dets in (("phase1", good), ("retrained", bad))}
    assert results["phase1"].per_class["forklift"].ap_integrated is None
    path = plot_pr_curves(results, tmp_path / "sub" / "pr.png")
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    assert width > 1.8 * height  # two panels side by side
    assert not list(tmp_path.joinpath("sub").glob("*.tmp*"))  # written atomically, no leftovers
