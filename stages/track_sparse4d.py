"""DVC stage `track_sparse4d`: the trained Sparse4D tracks every val scene -> predictions/sparse4d/val.txt.

The AI City 2025 11-column track file (scene class id frame x y z w l h yaw), all val scenes in one file.
"""

import argparse

from visionops.config import load_params
from visionops.pipeline import sparse4d_tracks

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    sparse4d_tracks.track(load_params(args.params))
