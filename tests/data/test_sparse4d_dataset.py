"""Sparse4D dataset over a converted synthetic scene: batch contract, augmentation consistency, bad input."""

from __future__ import annotations

import math
import shutil

import h5py
import numpy as np
import pytest
import torch
from convert_factories import RAW_PARAMS, run_conversion

from visionops.config import SyntheticParams
from visionops.data.ovpkl import load_ovpkl, write_ovpkl
from visionops.data.sequence_sampler import SequenceBatchSampler
from visionops.data.sparse4d_augment import Sparse4DAugment, project, projection_matrix
from visionops.data.sparse4d_dataset import IMAGENET_MEAN, IMAGENET_STD, Sparse4DDataset, collate_sparse4d
from visionops.models.sparse4d.box_state import encode_gt

CLASSES = ["Person", "Forklift", "NovaCarter", "Transporter", "FourierGR1T2", "AgilityDigit"]
SIZE = (192, 108)  # = stored size: without augmentation the input is the stored frame
BATCH_KEYS = {"images", "projection_mat", "image_wh", "focal", "timestamp", "scene_ids", "gt_boxes", "gt_labels",
              "gt_ids", "gt_visibility", "gt_depth", "cameras", "meta"}
STRONG = Sparse4DAugment(resize_lim=(1.1, 1.3), bot_pct_lim=(0.0, 0.1), flip_prob=0.5, rotate_deg=5.0,
                         bev_rot_rad=0.4, bev_scale_lim=(0.9, 1.1))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(root, ovpkl files) of two converted train scenes: 3 cameras x 6 frames at 192x108, with depth."""
    from visionops.data.synthetic import render_dataset  # noqa: PLC0415

    base = tmp_path_factory.mktemp("s4d")
    render_dataset(SyntheticParams(**{**RAW_PARAMS, "scenes": {"train": 2}, "frames": 6}), base / "raw")
    dirs, _, _ = run_conversion(base / "raw", base / "out")
    return dirs.root, sorted((dirs.ovpkl / "train").glob("*.pkl"))


def _rewrite(src, dst, edit):
    data = load_ovpkl(src)
    edit(data["infos"])
    write_ovpkl(dst, data["metadata"], data["infos"])
    return dst


def _rgb(images: torch.Tensor) -> np.ndarray:
    """(3, H, W) normalised -> (H, W, 3) float in [0, 255]."""
    return (images.numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255.0


def test_batch_contract_shapes_dtypes_and_sequences(converted):
    root, files = converted
    ds = Sparse4DDataset(files, root, CLASSES, (160, 96), augment=Sparse4DAugment(), with_depth=True)
    assert len(ds.sequences) == 2 and sum(map(len, ds.sequences)) == len(ds) == 12
    for seq in ds.sequences:
        times = [ds.info(i)["timestamp"] for i in seq]
        assert times == sorted(times) and len({ds.info(i)["scene_name"] for i in seq}) == 1
    batch = collate_sparse4d([ds[(ds.sequences[0][2], 5)], ds[(ds.sequences[1][0], 9)]])
    assert set(batch) == BATCH_KEYS
    assert batch["images"].shape == (2, 3, 3, 96, 160) and batch["images"].dtype == torch.float32
    assert batch["projection_mat"].shape == (2, 3, 4, 4) and batch["projection_mat"].dtype == torch.float32
    assert batch["image_wh"].tolist() == [[[160.0, 96.0]] * 3] * 2
    assert batch["focal"].shape == (2, 3) and bool((batch["focal"] > 0).all())
    assert batch["timestamp"].dtype == torch.float64 and batch["timestamp"].shape == (2,)
    assert batch["gt_depth"].shape == (2, 3, 96, 160) and batch["gt_depth"].dtype == torch.float32
    assert 0 < float(batch["gt_depth"].max()) < 40
    assert batch["scene_ids"][0].endswith("#5") and batch["scene_ids"][1].endswith("#9")
    for b in range(2):
        m = len(batch["gt_boxes"][b])
        assert batch["gt_boxes"][b].shape == (m, 11) and batch["gt_boxes"][b].dtype == torch.float32
        assert batch["gt_labels"][b].dtype == torch.int64 and batch["gt_ids"][b].shape == (m,)
        assert batch["gt_visibility"][b].shape == (m, 3) and batch["gt_visibility"][b].dtype == torch.float32
        assert len(batch["cameras"][b]) == 3
        assert set(batch["meta"][b]) == {"scene_name", "frame_idx", "token", "bev_origin"}
        assert batch["meta"][b]["bev_origin"].shape == (3,)


def test_without_augmentation_samples_are_the_stored_frames_and_ovpkl_geometry(converted):
    root, files = converted
    ds = Sparse4DDataset(files[:1], root, CLASSES, SIZE, with_depth=True)
    sample, info = ds[3], ds.info(3)
    assert sample["scene_id"] == info["scene_name"]
    from visionops.data.frame_store import FrameStore  # noqa: PLC0415

    for c, cam in enumerate(sample["cameras"]):
        entry = info["cams"][cam]
        expected = np.eye(4)
        expected[:3, :3] = entry["cam_intrinsic"]
        np.testing.assert_allclose(sample["projection_mat"][c].numpy(), expected @ entry["sensor2world_transform"],
                                   rtol=1e-5, atol=1e-4)
        assert float(sample["focal"][c]) == pytest.approx(entry["cam_intrinsic"][0, 0], rel=1e-6)
        with FrameStore(root / entry["data_path"][0]) as store:
            np.testing.assert_allclose(_rgb(sample["images"][c]), store.rgb(info["frame_idx"]), atol=1e-3)
            np.testing.assert_allclose(sample["gt_depth"][c].numpy(), store.depth_mm(info["frame_idx"]) / 1000.0)
    keep = info["valid_flag"]
    expected = encode_gt(torch.tensor(info["gt_boxes"][keep]).float(), torch.tensor(info["gt_velocity"][keep]).float())
    torch.testing.assert_close(sample["gt_boxes"], expected)
    assert sample["gt_ids"].tolist() == info["asset_inds"][keep].tolist()


def _centre_colours(ds, index, seed, mirror=False) -> list[float]:
    """Per visible GT centre: max colour difference between its pixel in the stored frame (original geometry)
    and in the augmented frame (augmented box centre through the augmented projection). ``mirror`` flips the
    augmented image afterwards: a deliberately wrong pipeline."""
    plain, aug, info = ds[index], ds[(index, seed)], ds.info(index)
    keep = info["valid_flag"]
    errors = []
    for c, cam in enumerate(plain["cameras"]):
        entry = info["cams"][cam]
        uv0, d0 = project(projection_matrix(entry["cam_intrinsic"], entry["sensor2world_transform"]),
                          info["gt_boxes"][keep, :3])
        uv1, _ = project(aug["projection_mat"][c].double().numpy(), aug["gt_boxes"][:, :3].double().numpy())
        img0 = _rgb(plain["images"][c])
        img1 = _rgb(aug["images"][c].flip(-1) if mirror else aug["images"][c])
        w, h = SIZE
        for (u0, v0), (u1, v1), d in zip(uv0, uv1, d0, strict=True):
            if d > 0.1 and 2 <= u0 < w - 2 and 2 <= v0 < h - 2 and 2 <= u1 < w - 2 and 2 <= v1 < h - 2:
                errors.append(float(np.abs(img0[round(v0), round(u0)] - img1[round(v1), round(u1)]).max()))
    return errors


def test_augmented_gt_centres_project_onto_the_same_image_content(converted):
    root, files = converted
    ds = Sparse4DDataset(files[:1], root, CLASSES, SIZE, augment=STRONG)
    draws = {s: STRONG.sample(np.random.default_rng(s)) for s in range(40)}
    seeds = [s for s, p in draws.items() if p.image.flip and p.bev.flip_x and not p.bev.flip_y][:1]
    seeds += [s for s, p in draws.items() if not p.image.flip and p.bev.flip_y and not p.bev.flip_x][:1]
    seeds += [s for s, p in draws.items() if p.image.flip and p.bev.flip_x and p.bev.flip_y][:1]
    assert len(seeds) == 3
    for seed in seeds:
        errors = [e for i in ds.sequences[0] for e in _centre_colours(ds, i, seed)]
        assert len(errors) >= 10 and np.median(errors) < 20, (seed, np.median(errors), len(errors))
        # The check has teeth: mirroring the augmented image (a wrong image/geometry pairing) fails it.
        wrong = [e for i in ds.sequences[0] for e in _centre_colours(ds, i, seed, mirror=True)]
        assert np.median(wrong) > 2 * np.median(errors)


def test_one_seed_gives_one_augmentation_for_every_frame_of_a_sequence(converted):
    root, files = converted
    ds = Sparse4DDataset(files[:1], root, CLASSES, (160, 96), augment=STRONG)
    first, later, other = ds[(0, 11)], ds[(4, 11)], ds[(4, 12)]
    torch.testing.assert_close(first["projection_mat"], later["projection_mat"])  # static cameras
    assert not torch.allclose(later["projection_mat"], other["projection_mat"])
    assert first["scene_id"] == later["scene_id"] != other["scene_id"]
    torch.testing.assert_close(ds[(4, 11)]["images"], later["images"])  # deterministic
    # A bare index is not augmented (a per-frame draw would break temporal consistency).
    torch.testing.assert_close(ds[4]["projection_mat"], Sparse4DDataset(files[:1], root, CLASSES, (160, 96))[4]
                               ["projection_mat"])


def test_classes_filter_and_ids(converted):
    root, files = converted
    ds = Sparse4DDataset(files, root, ["Transporter", "Person"], SIZE)
    for i in range(len(ds)):
        info, sample = ds.info(i), ds[i]
        keep = np.isin(info["gt_names"], ["Transporter", "Person"]) & info["valid_flag"]
        assert sample["gt_labels"].tolist() == [0 if n == "Transporter" else 1 for n in info["gt_names"][keep]]
        assert sample["gt_ids"].tolist() == info["asset_inds"][keep].tolist()


def test_empty_frames_zero_sizes_and_unknown_visibility(converted, tmp_path):
    root, files = converted

    def edit(infos):
        info = infos[0]
        for key in ("gt_boxes", "gt_velocity"):
            info[key] = info[key][:0]
        for key in ("gt_names", "instance_inds", "asset_inds", "valid_flag"):
            info[key] = info[key][:0]
        info["gt_visibility"] = []
        infos[1]["gt_boxes"][:, 3:6] = 0.0

    ds = Sparse4DDataset([_rewrite(files[0], tmp_path / "a.pkl", edit)], root, CLASSES, SIZE,
                         augment=Sparse4DAugment())
    batch = collate_sparse4d([ds[(ds.sequences[0][0], 1)], ds[(ds.sequences[0][1], 1)]])
    assert batch["gt_boxes"][0].shape == (0, 11) and batch["gt_labels"][0].shape == (0,)
    assert batch["gt_visibility"][0].shape == (0, 3)
    assert len(batch["gt_boxes"][1]) and bool(torch.isfinite(batch["gt_boxes"][1]).all())


def test_bad_input_errors_name_the_file_frame_and_camera(converted, tmp_path):
    root, files = converted

    def drop_camera(infos):
        cam = list(infos[2]["cams"])[1]
        del infos[2]["cams"][cam]

    bad = _rewrite(files[0], tmp_path / "missing_cam.pkl", drop_camera)
    frame = load_ovpkl(bad)["infos"][2]["frame_idx"]
    with pytest.raises(ValueError, match=rf"missing_cam\.pkl: frame {frame} has cameras .* same cameras"):
        Sparse4DDataset([bad], root, CLASSES, SIZE)

    def nan_calibration(infos):
        cam = list(infos[0]["cams"])[0]
        infos[0]["cams"][cam] = dict(infos[0]["cams"][cam], cam_intrinsic=np.full((3, 3), np.nan))

    bad = _rewrite(files[0], tmp_path / "nan.pkl", nan_calibration)
    with pytest.raises(ValueError, match=r"nan\.pkl: frame \d+, camera Camera_\d+: non-finite calibration"):
        Sparse4DDataset([bad], root, CLASSES, SIZE)
    with pytest.raises(FileNotFoundError, match=r"_infos_train\.pkl: frame store 'data/frames/.*\.h5' not found "
                                                r"under data root"):
        Sparse4DDataset(files[:1], tmp_path, CLASSES, SIZE)


def test_depth_requested_from_stores_without_depth_warns_and_gives_none(converted, tmp_path):
    root, files = converted
    info = load_ovpkl(files[0])["infos"][0]
    copy_root = tmp_path / "root"
    for entry in info["cams"].values():
        target = copy_root / entry["data_path"][0]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / entry["data_path"][0], target)
        with h5py.File(target, "a") as handle:
            del handle["distance_to_image_plane_png"]
            handle.attrs["has_depth"] = False
    with pytest.warns(UserWarning, match="no depth maps"):
        ds = Sparse4DDataset(files[:1], copy_root, CLASSES, SIZE, with_depth=True)
    assert ds[0]["gt_depth"] is None and collate_sparse4d([ds[0], ds[1]])["gt_depth"] is None


def test_collate_rejects_mixed_camera_counts(converted, tmp_path):
    root, files = converted

    def drop_everywhere(infos):
        cam = list(infos[0]["cams"])[0]
        for info in infos:
            del info["cams"][cam]

    two = _rewrite(files[0], tmp_path / "two.pkl", drop_everywhere)
    ds = Sparse4DDataset([files[1], two], root, CLASSES, SIZE)
    assert [len(ds.cameras[f]) for f in range(2)] == [3, 2]
    with pytest.raises(ValueError, match=r"different camera counts \[3, 2\].*same number of cameras.*batch size 1"):
        collate_sparse4d([ds[ds.sequences[0][0]], ds[ds.sequences[1][0]]])
    assert collate_sparse4d([ds[ds.sequences[1][0]]])["images"].shape[1] == 2


def test_dataloader_with_sequence_sampler_changes_scene_ids_on_new_sequences(converted):
    """Through a worker process (the frame stores reopen after the fork) with the training sampler."""
    root, files = converted
    ds = Sparse4DDataset(files, root, CLASSES, (96, 64), augment=Sparse4DAugment())
    sampler = SequenceBatchSampler(ds.sequences, 2, max_sequence_length=3, steps_per_epoch=5, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_sparse4d, num_workers=1)
    batches = list(loader)
    assert len(batches) == 5
    for b in range(2):
        ids = [batch["scene_ids"][b] for batch in batches]
        assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4]  # 3 frames per sequence, then a new one
        times = [batch["timestamp"][b].item() for batch in batches[:3]]
        assert all(math.isclose(t1 - t0, 1 / 30) for t0, t1 in zip(times, times[1:], strict=False))
