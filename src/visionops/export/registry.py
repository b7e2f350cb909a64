"""Exported models in the MLflow model registry: ``visionops-<family>``, alias ``current`` on the newest version.

MLflow reserves the alias ``latest`` (``models:/<name>/latest`` already means the highest version), so the
alias that follows each new export is ``current``: ``mlflow.pyfunc.load_model("models:/visionops-sparse4d@current")``
or ``mlflow.onnx.load_model(...)`` gets the graph the last ``dvc repro`` exported.
"""

from __future__ import annotations

from pathlib import Path

ALIAS = "current"


def registered_name(family: str) -> str:
    return f"visionops-{family}"


def log_and_register(path: str | Path, family: str, name: str = "model", tags: dict[str, str] | None = None
                     ) -> dict[str, str]:
    """Log the ONNX file to the active MLflow run as an ``mlflow.onnx`` model, register it, move the alias.

    Returns ``{"name", "version", "alias", "model_uri"}``.
    """
    import mlflow  # noqa: PLC0415
    import onnx  # noqa: PLC0415

    from visionops.export.onnx_io import load_checked  # noqa: PLC0415

    proto = load_checked(path)
    model_name = registered_name(family)
    # Requirements given explicitly: inferring them imports and inspects the whole environment (seconds).
    info = mlflow.onnx.log_model(onnx_model=proto, name=name, registered_model_name=model_name,
                                 onnx_execution_providers=["CPUExecutionProvider"],
                                 pip_requirements=[f"onnx=={onnx.__version__}", "onnxruntime"])
    client = mlflow.MlflowClient()
    version = str(info.registered_model_version)
    client.set_registered_model_alias(model_name, ALIAS, version)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(model_name, version, key, value)
    return {"name": model_name, "version": version, "alias": ALIAS, "model_uri": f"models:/{model_name}@{ALIAS}"}
