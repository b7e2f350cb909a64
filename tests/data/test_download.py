"""The download stage's sources, its atomicity, and the real huggingface_hub code path (offline cache)."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from factories import make_scene

from visionops.config import DataParams, HuggingFaceParams, LocalParams
from visionops.data import download
from visionops.data.download import DownloadError, hf_patterns, run_download

REPO_ID = "nvidia/PhysicalAI-SmartSpaces"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory) -> Path:
    """A HF hub cache as huggingface_hub itself lays it out: blobs/, snapshots/<commit>/ (symlinks), refs/main
    and the tree listing it uses to tell a complete snapshot from a partial one."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    from huggingface_hub.file_download import repo_folder_name

    root = tmp_path_factory.mktemp("hf")
    scenes = root / "scenes"
    for split, name in (("train", "Warehouse_000"), ("train", "Warehouse_001"), ("val", "Warehouse_015")):
        make_scene(scenes / "MTMC_Tracking_2025" / split / name, cameras=("Camera", "Camera_01"), frames=3)
    cache = root / "cache"
    storage = cache / repo_folder_name(repo_id=REPO_ID, repo_type="dataset")
    snapshot = storage / "snapshots" / COMMIT
    entries = {}
    for path in sorted(p for p in scenes.rglob("*") if p.is_file()):
        rel = path.relative_to(scenes).as_posix()
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        blob = storage / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
        entries[rel] = TreeCacheEntry(size=len(data), blob_id=hashlib.sha1(data).hexdigest(), lfs_sha256=digest,
                                      lfs_size=len(data))
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    write_tree_cache(str(storage), COMMIT, entries)
    return cache


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _hf(cache: Path, **kw) -> DataParams:
    return DataParams(source="huggingface", huggingface=HuggingFaceParams(cache_dir=str(cache), **kw))


def test_patterns_select_scenes_and_skip_depth():
    allow, ignore = hf_patterns(HuggingFaceParams(splits=["train"], scenes=["Warehouse_003"]))
    assert allow == ["MTMC_Tracking_2025/train/Warehouse_003/*"]
    assert ignore == ["MTMC_Tracking_2025/*/depth_maps/*"]
    assert hf_patterns(HuggingFaceParams(include_depth=True))[1] == []


def test_huggingface_from_cache_selected_scenes_without_depth(hf_cache, offline, tmp_path):
    raw = tmp_path / "raw"
    manifest = run_download(_hf(hf_cache, scenes=["Warehouse_000", "Warehouse_015"]), raw)
    assert sorted(str(p.relative_to(raw)) for p in raw.glob("*/*")) == ["train/Warehouse_000", "val/Warehouse_015"]
    scene = raw / "train" / "Warehouse_000"
    assert not (scene / "depth_maps").exists()
    video = scene / "videos" / "Camera_01.mp4"
    assert video.is_symlink() and "blobs" in os.readlink(video)
    assert manifest["source_info"]["commit"] == COMMIT
    assert [s["cameras"] for s in manifest["scenes"]] == [["Camera", "Camera_01"]] * 2
    assert json.loads((raw / "manifest.json").read_text())["source"] == "huggingface"


def test_huggingface_copy_with_depth(hf_cache, offline, tmp_path):
    raw = tmp_path / "raw"
    run_download(_hf(hf_cache, splits=["val"], include_depth=True, link="copy"), raw)
    depth = raw / "val" / "Warehouse_015" / "depth_maps" / "Camera.h5"
    assert depth.is_file() and not depth.is_symlink()


def test_incomplete_snapshot_is_reported_and_resumable(hf_cache, offline, tmp_path):
    broken = tmp_path / "cache"
    shutil.copytree(hf_cache, broken, symlinks=True)
    snap = next((broken).glob("datasets--*/snapshots/*"))
    (snap / "MTMC_Tracking_2025" / "train" / "Warehouse_001" / "calibration.json").unlink()
    with pytest.raises(DownloadError, match="incomplete.*resume"):
        run_download(_hf(broken, scenes=["Warehouse_001"], splits=["train"]), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
    # Another scene of the same snapshot is complete and still downloads.
    run_download(_hf(broken, scenes=["Warehouse_000"], splits=["train"]), tmp_path / "raw")


def test_unknown_scene_and_empty_cache(hf_cache, offline, tmp_path):
    with pytest.raises(DownloadError, match=r"\['Warehouse_999'\] not found"):
        run_download(_hf(hf_cache, scenes=["Warehouse_000", "Warehouse_999"]), tmp_path / "raw")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        run_download(_hf(tmp_path / "empty-cache"), tmp_path / "raw")


def test_local_symlink_copy_and_single_scene(tmp_path, _pristine_scene):
    src = tmp_path / "mine"
    shutil.copytree(_pristine_scene, src / "val" / "Warehouse_015")
    raw = tmp_path / "raw"
    run_download(DataParams(source="local", local=LocalParams(path=str(src))), raw)
    assert (raw / "val" / "Warehouse_015").is_symlink()
    run_download(DataParams(source="local", local=LocalParams(path=str(src), link="copy")), raw)
    assert not (raw / "val" / "Warehouse_015").is_symlink()
    single = src / "val" / "Warehouse_015"
    run_download(DataParams(source="local", local=LocalParams(path=str(single), split="test")), raw)
    assert [p.relative_to(raw).as_posix() for p in raw.glob("*/*")] == ["test/Warehouse_015"]


def test_local_invalid_scene_leaves_previous_data(tmp_path, tiny_scene):
    raw = tmp_path / "raw"
    (raw / "train" / "Old").mkdir(parents=True)
    (tiny_scene / "calibration.json").write_text("{}")
    with pytest.raises(DownloadError, match=r"1 of 1 scenes failed validation.*left unchanged") as err:
        run_download(DataParams(source="local", local=LocalParams(path=str(tiny_scene.parent.parent))), raw)
    assert "calibration.json" in str(err.value)
    assert [p.name for p in (raw / "train").iterdir()] == ["Old"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_local_requires_a_path(tmp_path):
    with pytest.raises(DownloadError, match="data.local.path is empty"):
        run_download(DataParams(source="local"), tmp_path / "raw")


def test_interrupted_run_leaves_nothing_half_written(tmp_path, tiny_scene, monkeypatch):
    raw = tmp_path / "raw"
    (raw / "train" / "Old").mkdir(parents=True)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "validate_tree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_download(DataParams(source="local", local=LocalParams(path=str(tiny_scene.parent.parent))), raw)
    assert [p.name for p in (raw / "train").iterdir()] == ["Old"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_synthetic_manifest_is_identical_when_the_data_is(tmp_path):
    """No timings or temporary paths in manifest.json: re-rendering the same data gives the same file."""
    import json

    from visionops.config import SyntheticParams

    params = DataParams(synthetic=SyntheticParams(scenes={"train": 1}, cameras=2, frames=3, width=64, height=48,
                                                  objects_per_scene=(1, 2), workers=1))
    raw = tmp_path / "raw"
    manifest = run_download(params, raw)
    first = (raw / "manifest.json").read_bytes()
    run_download(params, raw)
    assert (raw / "manifest.json").read_bytes() == first
    written = json.loads(first)
    assert "seconds" not in written and "seconds" in manifest  # the returned manifest keeps the timings
    assert ".tmp-" not in first.decode()
