"""DVC stages `profile_sparse4d` / `profile_detectnet`: latency of an exported model per backend on this device.

Writes reports/profile/<model>/<device-slug>.{json,md,png} and plots/profile/<model>.csv (see
visionops.pipeline.profile). Not named profile.py: run as a script, its folder comes first on sys.path and the
file would shadow the standard library's ``profile`` module, which ``torch.compile`` imports (via cProfile).
"""

import argparse

from visionops.config import load_params
from visionops.pipeline import profile

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", required=True, choices=profile.MODELS)
    args = parser.parse_args()
    profile.run(load_params(args.params), models=[args.model])
