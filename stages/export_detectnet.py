"""DVC stage `export_detectnet`: the trained model -> exports/detectnet_v2/.

ONNX, a parity report against PyTorch, and TensorRT engines where TensorRT and a GPU exist.
See visionops.pipeline.export; the model is also registered in MLflow (alias "current").
"""

import argparse

from visionops.config import load_params
from visionops.pipeline import export

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    export.export_detectnet(load_params(args.params))
