"""Synthetic warehouse scenes in the exact raw MTMC 2025 format (the pipeline's built-in dataset).

Renders multi-camera videos, depth maps, calibration, ground truth and a floor map of procedurally
generated warehouses with the six 2025 classes moving around racks. Deterministic from a seed.

Modules, one job each: :mod:`classes` (sizes, speeds, parts, appearance), :mod:`population` (class
mix, instance sampling), :mod:`layout` (floor, racks, doors, map.png), :mod:`cameras` (placement, K,
[R|t], footprints), :mod:`navigation` (drivable floor graph, routes), :mod:`agents` (steering, collision
avoidance), :mod:`motion` (scene trajectories, entering and leaving), :mod:`raycast` (ray/box and
ray/room intersection), :mod:`shading` (textures, light, tone, noise), :mod:`annotate` (2D boxes),
:mod:`background` (static scene per camera), :mod:`renderer` (frames of one camera), :mod:`scene`
(orchestration).
"""

from visionops.data.synthetic.scene import (
    VERSION,
    SceneSpec,
    build_scene_spec,
    calibration_for,
    ground_truth_for,
    render_dataset,
    render_scene,
    render_spec,
    scene_name,
    simulate_ground_truth,
)

__all__ = [
    "VERSION",
    "SceneSpec",
    "build_scene_spec",
    "calibration_for",
    "ground_truth_for",
    "render_dataset",
    "render_scene",
    "render_spec",
    "scene_name",
    "simulate_ground_truth",
]
