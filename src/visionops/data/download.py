"""The download stage: fill ``data/raw/<split>/<Scene>/`` from one of three sources.

* ``synthetic`` (default): render the built-in warehouse scenes (:mod:`visionops.data.synthetic`).
* ``huggingface``: ``nvidia/PhysicalAI-SmartSpaces``, subset ``MTMC_Tracking_2025``, through
  huggingface_hub's own ``snapshot_download`` (resumable, parallel, cached, offline-capable); the files
  are then linked (or copied) from the HF cache into the raw layout.
* ``local``: validate an existing folder and link (or copy) it.

Everything is assembled in a temporary sibling folder, validated, and only then swapped into place, so
an interrupted or failed run leaves the previous ``data/raw`` (or nothing) and never a half-written one.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visionops import atomic
from visionops.config import DataParams, HuggingFaceParams, LocalParams
from visionops.data.raw import SPLITS, find_scenes
from visionops.data.validate import ValidationReport, validate_scene

MANIFEST_FILE = "manifest.json"
Progress = Callable[[str], None]


class DownloadError(RuntimeError):
    """The source could not be fetched or produced invalid scenes; the message says what to fix."""


# --------------------------------------------------------------------------------------------------
# HuggingFace
# --------------------------------------------------------------------------------------------------


def hf_patterns(hf: HuggingFaceParams) -> tuple[list[str], list[str]]:
    """``(allow_patterns, ignore_patterns)`` for snapshot_download (fnmatch: ``*`` also matches ``/``)."""
    allow = []
    for split in hf.splits:
        if hf.scenes:
            allow += [f"{hf.subset}/{split}/{scene}/*" for scene in hf.scenes]
        else:
            allow.append(f"{hf.subset}/{split}/*")
    ignore = [] if hf.include_depth else [f"{hf.subset}/*/depth_maps/*"]
    return allow, ignore


def _link_tree(src: Path, dst: Path, mode: str, keep: Callable[[Path], bool] = lambda p: True) -> int:
    """Mirror the files of ``src`` where ``keep(path)`` holds into ``dst`` (symlink/hardlink/copy); returns bytes."""
    total = 0
    for path in sorted(src.rglob("*")):
        if path.is_dir() or not keep(path):
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        real = path.resolve()  # HF snapshots are symlinks into blobs/: point at the blob itself
        total += real.stat().st_size
        if mode == "symlink":
            os.symlink(real, target)
        elif mode == "hardlink":
            try:
                os.link(real, target)
            except OSError:  # other file system: fall back to a copy rather than failing a 70 GB job
                shutil.copy2(real, target)
        else:
            shutil.copy2(real, target)
    return total


def download_huggingface(hf: HuggingFaceParams, out_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Fetch the selected splits/scenes with ``snapshot_download`` and lay them out under ``out_dir``.

    Returns metadata: the resolved commit, the snapshot folder and the bytes linked.
    """
    from huggingface_hub import snapshot_download  # noqa: PLC0415
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError  # noqa: PLC0415

    try:  # huggingface_hub >= 1.x tells a partial snapshot apart from a missing one
        from huggingface_hub.errors import IncompleteSnapshotError  # noqa: PLC0415
    except ImportError:  # pragma: no cover - older huggingface_hub
        IncompleteSnapshotError = ()  # noqa: N806

    allow, ignore = hf_patterns(hf)
    if progress:
        progress(f"snapshot_download {hf.repo_id}@{hf.revision} ({len(allow)} patterns, depth={hf.include_depth})")
    try:
        snapshot = Path(
            snapshot_download(
                repo_id=hf.repo_id,
                repo_type="dataset",
                revision=hf.revision,
                allow_patterns=allow,
                ignore_patterns=ignore or None,
                cache_dir=hf.cache_dir,
                max_workers=hf.max_workers,
            )
        )
    except IncompleteSnapshotError as exc:
        raise DownloadError(
            f"{exc} The files already fetched stay in the HF cache: re-run `visionops data download` "
            "(or `dvc repro download`) with network access to resume."
        ) from exc
    except LocalEntryNotFoundError as exc:
        raise DownloadError(
            f"{hf.repo_id}@{hf.revision} is not in the HF cache and the Hub cannot be reached ({exc}). "
            "Check the network / HF_HUB_OFFLINE, or set data.huggingface.cache_dir to a prepared cache."
        ) from exc
    except HfHubHTTPError as exc:
        raise DownloadError(
            f"HuggingFace refused {hf.repo_id}@{hf.revision}: {exc}. The dataset is gated: accept its terms on "
            "the Hub and log in with `hf auth login` (or set HF_TOKEN)."
        ) from exc
    from huggingface_hub.utils import filter_repo_objects  # noqa: PLC0415

    def keep(path: Path) -> bool:
        # The snapshot folder may hold more than asked for (an earlier download, or the offline path that
        # returns the whole cached snapshot): apply the same patterns to what is linked.
        rel = path.relative_to(snapshot).as_posix()
        return bool(list(filter_repo_objects([rel], allow_patterns=allow, ignore_patterns=ignore or None)))

    total = 0
    found = []
    for split in hf.splits:
        split_dir = snapshot / hf.subset / split
        scenes = sorted(p for p in split_dir.iterdir() if p.is_dir()) if split_dir.is_dir() else []
        if hf.scenes:
            scenes = [p for p in scenes if p.name in hf.scenes]
        for scene in scenes:
            if progress:
                progress(f"linking {split}/{scene.name}")
            total += _link_tree(scene, out_dir / split / scene.name, hf.link, keep)
            found.append(f"{split}/{scene.name}")
    if hf.scenes:
        missing = sorted(set(hf.scenes) - {f.split("/", 1)[1] for f in found})
        if missing:
            raise DownloadError(
                f"scenes {missing} not found in splits {hf.splits} of {hf.repo_id}/{hf.subset}; "
                "fix data.huggingface.scenes or data.huggingface.splits"
            )
    if not found:
        raise DownloadError(f"no scene folders under {snapshot / hf.subset} for splits {hf.splits}")
    return {"revision": hf.revision, "commit": snapshot.name, "snapshot": str(snapshot), "bytes": total}


# --------------------------------------------------------------------------------------------------
# local folder
# --------------------------------------------------------------------------------------------------


def link_local(local: LocalParams, out_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Link (or copy) the scenes of an existing raw-layout folder into ``out_dir``."""
    if not local.path:
        raise DownloadError("data.source is 'local' but data.local.path is empty: set it to your raw data folder")
    src = Path(local.path).expanduser().resolve()
    if not src.is_dir():
        raise DownloadError(f"data.local.path {src} does not exist or is not a folder")
    scenes = find_scenes(src)
    if not scenes:
        raise DownloadError(
            f"{src} holds no scene folders: expected <split>/<Scene>/{{videos/, calibration.json}} or one scene folder"
        )
    total = 0
    for scene in scenes:
        split = scene.parent.name if scene.parent.name in SPLITS and scene != src else local.split
        target = out_dir / split / scene.name
        if target.exists():
            raise DownloadError(f"two scenes named {split}/{scene.name} under {src}")
        if progress:
            progress(f"{local.link} {scene} -> {split}/{scene.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if local.link == "symlink":
            os.symlink(scene, target, target_is_directory=True)
            total += sum(p.stat().st_size for p in scene.rglob("*") if p.is_file())
        else:
            shutil.copytree(scene, target, symlinks=False)
            total += sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return {"path": str(src), "bytes": total}


# --------------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------------


def validate_tree(root: Path, *, decode: bool = False) -> list[ValidationReport]:
    """Validate every ``<split>/<Scene>`` under ``root``; train/val scenes must have ground truth."""
    reports = []
    for scene in find_scenes(root):
        split = scene.parent.name
        reports.append(validate_scene(scene, decode=decode, require_gt=split in ("train", "val")))
    return reports


def folder_bytes(root: Path) -> int:
    """Total size in bytes of the files under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def run_download(data: DataParams, raw_dir: str | os.PathLike | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Produce ``raw_dir`` (default ``data.raw_dir``) from ``data.source``; returns the manifest.

    The manifest (also written to ``<raw_dir>/manifest.json``) lists the scenes with camera and frame
    counts, the source details (resolved HF commit, local path, synthetic seed) and timings.
    """
    raw_dir = Path(raw_dir or data.raw_dir)
    atomic.remove_stale_temporaries(raw_dir.parent)
    started = time.perf_counter()
    with atomic.atomic_dir(raw_dir) as staging:
        if data.source == "synthetic":
            from tqdm import tqdm  # noqa: PLC0415

            from visionops.data.synthetic import render_dataset  # noqa: PLC0415

            syn = data.synthetic
            total = sum(syn.scenes.values()) * syn.cameras * syn.frames
            with tqdm(total=total, unit="cam-frame", desc="rendering", disable=progress is None,
                      mininterval=1.0) as bar:
                summaries = render_dataset(syn, staging, progress=bar.update)
            source_info: dict[str, Any] = {"seed": data.synthetic.seed, "scenes": summaries}
        elif data.source == "huggingface":
            source_info = download_huggingface(data.huggingface, staging, progress)
        else:
            source_info = link_local(data.local, staging, progress)
        fetched = time.perf_counter()
        if progress:
            progress("validating scenes")
        reports = validate_tree(staging, decode=data.validate_decode)
        bad = [r for r in reports if not r.ok]
        if bad:
            lines = [f"{len(bad)} of {len(reports)} scenes failed validation; {raw_dir} was left unchanged:"]
            for report in bad:
                lines += [f"  {report.scene.relative_to(staging)}:"] + [f"    {f}" for f in report.errors[:10]]
            raise DownloadError("\n".join(lines))
        manifest = {
            "source": data.source,
            "source_info": source_info,
            "scenes": [
                {
                    "split": r.scene.parent.name,
                    "name": r.scene.name,
                    "cameras": r.cameras,
                    "frames": r.frames,
                    "gt_frames": r.gt_frames,
                    "gt_objects": r.gt_objects,
                    "warnings": [str(w) for w in r.warnings],
                }
                for r in reports
            ],
            "bytes": folder_bytes(staging) if data.source == "synthetic" else source_info.get("bytes", 0),
            "seconds": {"fetch": round(fetched - started, 3), "validate": round(time.perf_counter() - fetched, 3)},
        }
        atomic.write_json(staging / MANIFEST_FILE, stable_manifest(manifest, staging, raw_dir))
    return manifest


VOLATILE_KEYS = frozenset({"seconds", "timings"})


def stable_manifest(value: Any, staging: Path, raw_dir: Path) -> Any:
    """The manifest as written to ``manifest.json``: without timings and with staging paths shown as their final
    place, so re-producing the same data gives the same file (and the same DVC hash for ``data/raw``)."""
    if isinstance(value, dict):
        return {k: stable_manifest(v, staging, raw_dir) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [stable_manifest(v, staging, raw_dir) for v in value]
    if isinstance(value, str):
        return value.replace(str(staging), str(raw_dir))
    return value
