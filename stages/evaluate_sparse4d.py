"""DVC stage `evaluate_sparse4d`: AI City 2025 HOTA (DetA, AssA, LocA per class) of the val tracks.

Writes metrics/sparse4d.json, plots/sparse4d/hota_per_class.csv and reports/sparse4d/hota_per_class.png.
"""

import argparse

from visionops.config import load_params
from visionops.pipeline import sparse4d_tracks

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    sparse4d_tracks.evaluate(load_params(args.params))
