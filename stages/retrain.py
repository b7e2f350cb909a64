"""DVC stage `retrain` (DetectNet_v2): phase 2, the pruned model retrained -> models/detectnet_v2/retrained.ckpt."""

import argparse

from visionops.config import load_params
from visionops.pipeline import detectnet

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    detectnet.fit(load_params(args.params), phase="retrain")
