"""DVC stage `pipeline_runs` (last): completes this execution's MLflow pipeline run of each model family.

A stage that DVC restores from its run-cache (or finds up to date) never runs its command, so it logs no MLflow
run. This stage names such stages on the family's pipeline run (tag `visionops.restored_stages`) and copies the
headline metrics they produced from their DVC outputs (metrics/*.json, data/raw/manifest.json), so no pipeline
run is silently missing numbers.
"""

import argparse

from visionops import pipeline_completion
from visionops.config import load_params

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    pipeline_completion.finalize_pipeline_runs(params, experiment_prefix=params.tracking.experiment_prefix)
