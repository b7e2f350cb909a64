"""DVC stage `train_sparse4d`: temporal Lightning training on data/ovpkl + data/frames + data/anchors.

Writes models/sparse4d/model.ckpt (loads with weights_only=True); curves, previews and the checkpoint go to
MLflow (experiment sparse4d).
"""

import argparse

from visionops.config import load_params
from visionops.pipeline import sparse4d

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    sparse4d.fit(load_params(args.params))
