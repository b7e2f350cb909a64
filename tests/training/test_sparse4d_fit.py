"""Sparse4D through Lightning: fit with validation and MLflow logging, the checkpoint round trip with
``weights_only=True``, and the NaN guard that names the term and keeps the last good checkpoint."""

from __future__ import annotations

import math

import mlflow
import pytest
import torch
from lightning.pytorch.loggers import MLFlowLogger
from sparse4d_synthetic import TINY, BatchList, batch
from torch.utils.data import DataLoader

from visionops.models.sparse4d.criterion import NonFiniteLossError
from visionops.training.sparse4d_fit import BEV_HANDLING, fit_sparse4d, load_sparse4d_checkpoint, resolve_precision
from visionops.training.sparse4d_module import Sparse4DModule


def _loader(batches, **kwargs):
    return DataLoader(BatchList(batches, **kwargs), batch_size=None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """2 epochs x 2 steps on a 2-stream sequence, validated each epoch, inside an MLflow run."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("s4d")
    out = folder / "model.ckpt"
    module = Sparse4DModule(TINY, lr=1e-3, warmup_steps=1, meta={"preset": "tiny", "bev": BEV_HANDLING})
    train = _loader([batch([t, t + 3], ["a", "b"]) for t in range(2)])
    val = _loader([batch([t, t], ["v", "w"]) for t in range(2)])
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    # module scope runs before conftest's per-test store: this fixture's own store and artifact folder. The
    # URI is set explicitly too: an earlier test may have set mlflow's URI in-process, which beats the variable.
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        try:
            experiment = mlflow.create_experiment("sparse4d-test",
                                                  artifact_location=(folder / "artifacts").as_uri())
            with mlflow.start_run(experiment_id=experiment) as run:
                logger = MLFlowLogger(tracking_uri=uri, run_id=run.info.run_id)
                metrics = fit_sparse4d(module, train, val, out, epochs=2, grad_clip=25.0, logger=logger,
                                       log_every_n_steps=1, accelerator="cpu")
        finally:
            mlflow.set_tracking_uri(previous)
    return module, out, metrics, run.info.run_id, uri


def test_fit_logs_losses_lr_grad_norm_metrics_and_a_preview(trained):
    module, out, metrics, run_id, uri = trained
    assert set(metrics) == {"val/loss", "val/recall_2m", "val/precision_2m", "val/centre_error_m"}
    assert all(math.isfinite(v) for v in metrics.values())
    client = mlflow.MlflowClient(tracking_uri=uri)
    logged = client.get_run(run_id).data.metrics
    for key in ("train/total", "train/layer0_cls", "train/layer1_dn_box", "train/depth", "train/lr",
                "train/lr_backbone", "train/grad_norm", "val/recall_2m", "val/loss"):
        assert key in logged, key
    assert len(client.get_metric_history(run_id, "train/total")) == 4
    frames = [a.path for a in client.list_artifacts(run_id, "val_frames")]
    assert frames == ["val_frames/epoch_000.png", "val_frames/epoch_001.png"]
    assert module.global_step == 4 and out.is_file()


def test_checkpoint_round_trip_with_weights_only(trained):
    module, out, _, _, _ = trained
    raw = torch.load(out, map_location="cpu", weights_only=True)  # the whole Lightning checkpoint
    assert raw["global_step"] == 4 and raw["hyper_parameters"]["model"]["embed_dims"] == TINY.embed_dims
    model, meta = load_sparse4d_checkpoint(out)
    assert not model.training and model.cfg == module.cfg
    assert meta["classes"] == list(TINY.class_names) and meta["input_size"] == list(TINY.input_size)
    assert meta["preset"] == "tiny" and meta["bev"] == BEV_HANDLING and meta["config"]["num_anchor"] == 32
    source = module.model.eval()
    for m in (source, model):
        m.reset(restart_ids=True)
    with torch.no_grad():
        for t in range(2):  # two frames: the temporal path must agree too
            b = batch(t)
            args = (b["images"], b["projection_mat"], b["image_wh"], b["timestamp"], b["scene_ids"])
            expected, got = source(*args), model(*args)
    torch.testing.assert_close(got["classification"][-1], expected["classification"][-1])
    torch.testing.assert_close(got["prediction"][-1], expected["prediction"][-1])
    assert torch.equal(got["instance_ids"], expected["instance_ids"])


def test_non_finite_loss_stops_with_the_term_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "model.ckpt"
    module = Sparse4DModule(TINY, lr=1e-3, warmup_steps=0)
    train = _loader([batch(0)], poison_after=1)  # the second fetch (epoch 2) has NaN images
    with pytest.raises(NonFiniteLossError) as err:
        fit_sparse4d(module, train, None, out, epochs=3, accelerator="cpu")
    text = str(err.value)
    assert err.value.term == "layer0_cls" and err.value.layer == 0
    assert "'layer0_cls' (decoder layer 0) is nan at training step 1" in text
    assert f"last good checkpoint {out} (step 1) is kept" in text
    raw = torch.load(out, map_location="cpu", weights_only=True)
    assert raw["global_step"] == 1
    assert all(torch.isfinite(v).all() for v in raw["state_dict"].values() if v.is_floating_point())


def test_precision_auto_is_bf16_on_cuda_and_an_explicit_choice_is_honoured():
    expected = "bf16-mixed" if torch.cuda.is_available() else "32-true"
    assert resolve_precision("auto") == expected
    assert resolve_precision("auto", accelerator="cpu") == "32-true"
    assert resolve_precision("bf16-mixed", accelerator="cpu") == "bf16-mixed"  # asked for: not silently fp32
    assert resolve_precision("32-true") == "32-true"
    with pytest.raises(ValueError, match="16-mixed .* needs a CUDA GPU"):
        resolve_precision("16-mixed", accelerator="cpu")


def test_bf16_autocast_trains_on_cpu_with_fp32_weights(tmp_path):
    torch.manual_seed(0)
    module = Sparse4DModule(TINY, lr=1e-3, warmup_steps=1, meta={"preset": "tiny", "bev": BEV_HANDLING})
    train = _loader([batch([t, t + 3], ["a", "b"]) for t in range(2)])
    out = tmp_path / "model.ckpt"
    fit_sparse4d(module, train, None, out, epochs=1, precision="bf16-mixed", accelerator="cpu")
    assert module.global_step == 2
    raw = torch.load(out, map_location="cpu", weights_only=True)
    weights = [v for v in raw["state_dict"].values() if v.is_floating_point()]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights)


def test_resume_continues_steps_optimizer_and_schedule_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    train = _loader([batch([t, t + 3], ["a", "b"]) for t in range(2)])
    out = tmp_path / "model.ckpt"
    first = Sparse4DModule(TINY, lr=1e-3, warmup_steps=1, total_steps=4)
    fit_sparse4d(first, train, None, out, epochs=1, accelerator="cpu")  # "interrupted" after epoch 1
    saved = torch.load(out, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2 and saved["optimizer_states"]

    second = Sparse4DModule(TINY, lr=1e-3, warmup_steps=1, total_steps=4)
    ran = []
    step = second.training_step
    second.training_step = lambda batch, batch_idx: ran.append(batch_idx) or step(batch, batch_idx)
    fit_sparse4d(second, train, None, out, epochs=2, accelerator="cpu", resume_from=out)
    assert len(ran) == 2  # a fresh start would run 4
    resumed = torch.load(out, map_location="cpu", weights_only=True)
    assert second.global_step == 4 and resumed["epoch"] == saved["epoch"] + 1
    # the schedule went on from step 2 instead of restarting its warm-up
    assert resumed["lr_schedulers"][0]["last_epoch"] == 4
