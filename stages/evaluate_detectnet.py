"""DVC stage `evaluate_detectnet` (DetectNet_v2): KPIs of phase 1 and the retrained model on data/kitti/val.

Writes metrics/detectnet_v2.json, the PR curves under plots/detectnet_v2/ and the figures under reports/detectnet_v2/.
"""

import argparse

from visionops.config import load_params
from visionops.pipeline import detectnet_evaluate

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    detectnet_evaluate.evaluate(load_params(args.params))
