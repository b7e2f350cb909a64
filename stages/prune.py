"""DVC stage `prune` (DetectNet_v2): TAO threshold pruning of phase 1.

Writes models/detectnet_v2/pruned.pt and reports/prune/detectnet_v2.{json,md}.
"""

import argparse

from visionops.config import load_params
from visionops.pipeline import detectnet

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    detectnet.prune(load_params(args.params))
