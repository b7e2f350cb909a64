"""DVC stage `convert`: data/raw -> data/frames (HDF5), data/ovpkl (OVPKL), data/kitti (KITTI), data/anchors."""

import argparse

from visionops.config import load_params
from visionops.pipeline import convert

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    convert.run(load_params(args.params))
