"""DVC stage `train_detectnet` (DetectNet_v2): phase 1 (L1-regularised, TAO schedule).

Reads data/kitti, writes models/detectnet_v2/phase1.ckpt.
"""

import argparse

from visionops.config import load_params
from visionops.pipeline import detectnet

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    detectnet.fit(load_params(args.params), phase="train")
