"""Planning a scene's conversion without decoding anything: cameras, frame rate, kept frames, BEV groups,
and the consistency checks whose failure would otherwise surface deep inside training (a video camera
missing from calibration.json, GT naming an unknown camera, an empty scene, unequal video lengths).

Fewer video frames than GT frames: the scene is truncated to the frames every camera has (the GT beyond
them is not used) and a warning says so; cameras of one scene with different lengths are cut to the
shortest the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from visionops.config import ConvertParams
from visionops.data.bev_groups import BevGroup, make_groups
from visionops.data.raw import RawScene
from visionops.data.schema import SchemaError


class ConversionError(RuntimeError):
    """The raw data cannot be converted; the message names the file (and frame/camera) and the fix."""


@dataclass
class ScenePlan:
    """What will be converted of one scene (computed without decoding)."""

    split: str
    scene: RawScene
    cameras: list[str]
    source_fps: float
    step: int
    frame_ids: list[int]
    source_size: tuple[int, int]
    stored_size: tuple[int, int]
    depth_cameras: list[str]
    groups: list[BevGroup]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.scene.name

    @property
    def has_gt(self) -> bool:
        return self.scene.has_ground_truth


# --------------------------------------------------------------------------------------------------
# planning and consistency checks
# --------------------------------------------------------------------------------------------------


def find_split_scenes(raw_dir: Path, splits: list[str]) -> list[tuple[str, RawScene]]:
    """(split, scene) for every ``<raw_dir>/<split>/<Scene>`` of the requested splits, sorted."""
    out = []
    for split in splits:
        folder = raw_dir / split
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                out.append((split, RawScene(child)))
    return out


def _frame_step(source_fps: float, fps: float | None, where: str) -> int:
    if fps is None:
        return 1
    ratio = source_fps / fps
    step = round(ratio)
    if step < 1 or abs(ratio - step) > 1e-3:
        choices = ", ".join(f"{source_fps / k:g}" for k in range(1, 7))
        raise ConversionError(f"{where}: convert.fps={fps:g} does not divide the source rate {source_fps:g} fps; "
                              f"choose one of {choices} (or null for every frame)")
    return step


def check_ground_truth_cameras(scene: RawScene, calibration_ids: set[str]) -> None:
    """Every camera named by a GT 2D box must exist in calibration.json."""
    for frame, objects in scene.ground_truth.items():
        for index, obj in enumerate(objects):
            for key, boxes in (("2d bounding box visible", obj.bbox_visible), ("2d bounding box", obj.bbox_full)):
                for cam in boxes or {}:
                    if cam not in calibration_ids:
                        raise ConversionError(
                            f"{scene.ground_truth_path}: frame {frame}, object #{index} "
                            f"({obj.object_type} {obj.object_id}), key {key!r} names camera {cam!r}, which is "
                            f"not in {scene.calibration_path.name} (cameras: {', '.join(sorted(calibration_ids))}). "
                            "The GT and the calibration come from different dataset revisions: re-download the scene."
                        )


def plan_scene(split: str, scene: RawScene, params: ConvertParams) -> ScenePlan:
    """Check a scene and decide what to convert; raises :class:`ConversionError` naming the file."""
    from visionops.data.video import count_frames, probe  # noqa: PLC0415

    cameras = scene.camera_ids
    if not cameras:
        raise ConversionError(f"{scene.path}: empty scene, no videos/*.mp4; re-run the download stage "
                              "(or remove the folder if the scene is not wanted)")
    try:
        calibration = scene.calibration
    except FileNotFoundError:
        raise ConversionError(f"{scene.calibration_path}: missing; re-run the download stage") from None
    except SchemaError as exc:
        raise ConversionError(str(exc)) from None
    calibration_ids = set(calibration.camera_ids)
    missing = [c for c in cameras if c not in calibration_ids]
    if missing:
        raise ConversionError(
            f"{scene.calibration_path}: no sensor for camera(s) {missing} that have videos in {scene.path / 'videos'}; "
            "the calibration does not match the videos: re-download the scene, or delete the videos of "
            "cameras you do not want converted"
        )
    warnings: list[str] = []
    extra = sorted(calibration_ids - set(cameras))
    if extra:
        warnings.append(f"{scene.name}: calibration cameras without a video are ignored: {extra}")
    if scene.has_ground_truth:
        try:
            check_ground_truth_cameras(scene, calibration_ids)
        except SchemaError as exc:
            raise ConversionError(str(exc)) from None

    infos = {}
    for cam in cameras:
        path = scene.video_path(cam)
        try:
            info = probe(path)
            if info["frames"] is None:
                info["frames"] = count_frames(path, exact=True)
        except Exception as exc:  # noqa: BLE001 - PyAV raises many types for unreadable files
            raise ConversionError(f"{path}: cannot read the video container at frame 0 ({exc}); the file is "
                                  "corrupt or truncated: re-run the download stage") from None
        infos[cam] = info
    sizes = {(i["width"], i["height"]) for i in infos.values()}
    if len(sizes) != 1:
        raise ConversionError(f"{scene.path}: cameras have different frame sizes {sorted(sizes)}; "
                              "convert.resize needs one source size per scene")
    source_size = sizes.pop()
    fps_values = [i["fps"] or calibration.camera(c).fps or 30.0 for c, i in infos.items()]
    source_fps = float(fps_values[0])
    if any(abs(f - source_fps) > 1e-3 for f in fps_values):
        raise ConversionError(f"{scene.path}: cameras have different frame rates {sorted(set(fps_values))}")
    step = _frame_step(source_fps, params.fps, str(scene.path))

    lengths = {cam: int(i["frames"]) for cam, i in infos.items()}
    n_frames = min(lengths.values())
    if n_frames <= 0:
        raise ConversionError(f"{scene.video_path(min(lengths, key=lengths.get))}: video has no frames; "
                              "re-run the download stage")
    if len(set(lengths.values())) > 1:
        warnings.append(f"{scene.name}: cameras have {min(lengths.values())}-{max(lengths.values())} frames; "
                        f"converting the first {n_frames} (the shortest camera)")
    if scene.has_ground_truth and scene.ground_truth:
        gt_frames = max(scene.ground_truth) + 1
        if gt_frames > n_frames:
            warnings.append(f"{scene.name}: the videos have {n_frames} frames but the GT annotates {gt_frames}; "
                            f"truncating to the first {n_frames} frames (GT beyond them is not used)")
    if params.max_frames is not None:
        n_frames = min(n_frames, params.max_frames)
    frame_ids = list(range(0, n_frames, step))

    stored_size = tuple(params.resize) if params.resize else source_size
    depth_cameras = []
    if params.depth and scene.has_depth:
        depth_cameras = [c for c in cameras if scene.depth_path(c).is_file()]
        lacking = sorted(set(cameras) - set(depth_cameras))
        if lacking:
            warnings.append(f"{scene.name}: no depth file for {lacking}; their frame stores have no depth")

    group = params.bev_groups
    try:
        groups = make_groups(calibration, cameras, mode=group.mode, max_cameras=group.max_cameras,
                             num_groups=group.num_groups, group_size=tuple(group.group_size), seed=group.seed,
                             dilation_m=group.dilation_m, max_range_m=group.max_range_m)
    except (KeyError, ValueError) as exc:
        raise ConversionError(f"{scene.calibration_path}: cannot form BEV groups: {exc}") from None
    return ScenePlan(split, scene, cameras, source_fps, step, frame_ids, source_size, stored_size, depth_cameras,
                     groups, warnings)


