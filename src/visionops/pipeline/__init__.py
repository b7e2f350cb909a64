"""Stage entry points: what each DVC stage (and the matching CLI command) runs, with MLflow tracking."""
