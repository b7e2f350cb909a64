"""Optuna hyper-parameter sweeps of the pipeline's models (``visionops sweep MODEL``).

One module per job: :mod:`~visionops.sweep.space` (search space -> trial params), :mod:`~visionops.sweep.storage`
(URL, heartbeats, retry of trials whose worker died), :mod:`~visionops.sweep.study` (sampler, pruner, study and
MLflow parent run), :mod:`~visionops.sweep.objectives` (what a trial trains), :mod:`~visionops.sweep.trial` (a
trial as a nested MLflow run), :mod:`~visionops.sweep.runner` (workers), :mod:`~visionops.sweep.results`
(best params, tables, plots) and :mod:`~visionops.sweep.progress` (terminal display). Settings:
``sweep`` in params.yaml (:class:`visionops.config.SweepParams`).
"""
