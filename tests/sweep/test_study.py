"""Storage URLs and errors, idempotent study creation, the settings guard, and the MLflow parent run."""

from __future__ import annotations

import importlib.util

import mlflow
import optuna
import pytest
from sweep_helpers import detectnet_params

from visionops.config import ConfigError
from visionops.sweep.storage import ENV_STORAGE, StorageError, mask, open_storage, storage_url
from visionops.sweep.study import PARENT_RUN_ATTR, create_or_load, ensure_parent_run


def test_storage_url_precedence(tmp_path, monkeypatch):
    params = detectnet_params().sweep
    monkeypatch.delenv(ENV_STORAGE, raising=False)
    assert storage_url(None, params, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns/optuna.db"
    with_param = params.model_copy(update={"storage": "sqlite:////p/optuna.db"})
    assert storage_url(None, with_param, tmp_path) == "sqlite:////p/optuna.db"
    monkeypatch.setenv(ENV_STORAGE, "sqlite:////env/optuna.db")
    assert storage_url(None, with_param, tmp_path) == "sqlite:////env/optuna.db"
    assert storage_url("sqlite:////cli.db", with_param, tmp_path) == "sqlite:////cli.db"
    with pytest.raises(ConfigError, match=r"not a SQLAlchemy URL; use e\.g\. sqlite:////"):
        storage_url("mlruns/optuna.db", params, tmp_path)


def test_unreachable_server_names_the_url_without_its_password():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg2://optuna:s3cret@127.0.0.1:{port}/optuna"
    with pytest.raises(StorageError) as err:
        open_storage(url, detectnet_params().sweep)
    text = str(err.value)
    assert f"optuna:***@127.0.0.1:{port}/optuna: cannot open it" in text and "s3cret" not in text
    assert "Check the host, port" in text
    assert mask("postgresql+psycopg2://u:p@h/db") == "postgresql+psycopg2://u:***@h/db"


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is not None, reason="psycopg 3 is installed here")
def test_bare_postgresql_url_explains_the_driver():
    with pytest.raises(StorageError, match=r"write postgresql\+psycopg2://"):
        open_storage("postgresql://u:p@127.0.0.1:1/db", detectnet_params().sweep)


def test_study_creation_is_idempotent_and_guards_its_settings(tmp_path):
    params = detectnet_params()
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = create_or_load(open_storage(url, params.sweep), "dn", params, "detectnet_v2")
    again = create_or_load(open_storage(url, params.sweep), "dn", params, "detectnet_v2")
    assert first._study_id == again._study_id
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["dn"]
    assert again.user_attrs["model"] == "detectnet_v2" and again.user_attrs["metric"] == "val/loss"
    assert again.direction == optuna.study.StudyDirection.MINIMIZE
    # the searched keys may differ from params.yaml (the study sets them), anything else may not
    moved = detectnet_params()
    moved.detectnet_v2.train.max_lr = 0.5
    create_or_load(open_storage(url, params.sweep), "dn", moved, "detectnet_v2")
    changed = detectnet_params({"space": {"detectnet_v2.train.max_lr": {"type": "float", "low": 1e-5, "high": 1e-3}}})
    with pytest.raises(ConfigError, match=r"study 'dn' exists with other settings.*--study NEW_NAME"):
        create_or_load(open_storage(url, params.sweep), "dn", changed, "detectnet_v2")
    other = detectnet_params()
    other.detectnet_v2.input_size = (160, 96)
    with pytest.raises(ConfigError, match=r"optuna delete-study --study-name dn"):
        create_or_load(open_storage(url, params.sweep), "dn", other, "detectnet_v2")


def test_parent_run_is_created_once_and_reopened(tmp_path):
    params = detectnet_params()
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = create_or_load(open_storage(url, params.sweep), "dn", params, "detectnet_v2")
    run_id = ensure_parent_run(study, params, "detectnet_v2", url)
    client = mlflow.MlflowClient()
    client.set_terminated(run_id, "FINISHED")
    reloaded = create_or_load(open_storage(url, params.sweep), "dn", params, "detectnet_v2")
    assert reloaded.user_attrs[PARENT_RUN_ATTR] == run_id
    assert ensure_parent_run(reloaded, params, "detectnet_v2", url) == run_id
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"  # more trials are coming
    assert run.info.run_name == "sweep-dn" and run.data.tags["optuna.study"] == "dn"
    assert client.get_experiment(run.info.experiment_id).name == "detectnet_v2"
    assert run.data.params["sweep.detectnet_v2.metric"] == "val/loss"
    assert run.data.params["sweep.detectnet_v2.space.detectnet_v2.train.max_lr.log"] == "True"
