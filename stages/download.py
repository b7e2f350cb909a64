"""DVC stage `download`: raw MTMC 2025 scenes -> data/raw (synthetic, HuggingFace or a local folder)."""

import argparse

from visionops.config import load_params
from visionops.pipeline import download

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    download.run(load_params(args.params))
