"""The static background of one camera: room, door corridors, racks and clutter, rendered once.

Per pixel it keeps the 8-bit colour, the z-depth (for the z-test of moving objects and the depth maps)
and, where the floor is seen, the floor point (for the objects' blob shadows). Every frame of that camera
starts from these buffers, so only moving objects are ray cast per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionops.data.synthetic import raycast, shading
from visionops.data.synthetic.annotate import amodal_box, pixel_rect
from visionops.data.synthetic.cameras import CameraSpec
from visionops.data.synthetic.layout import Layout, StaticBox
from visionops.data.synthetic.shading import Lighting

KIND_FLOOR, KIND_CEILING, KIND_WALL, KIND_CORRIDOR, KIND_BOX = 0, 1, 2, 3, 4


@dataclass
class Background:
    """Buffers of the static scene seen by one camera (H x W).

    Attributes:
        radiance: (H, W, 3) float32 linear radiance, vignetting applied, before exposure.
        depth: (H, W) float32 z-depth, metres.
        kind: (H, W) uint8 KIND_* of the surface seen.
        floor_xy: (H, W, 2) float32 world (x, y) where the surface is floor (room or corridor), NaN elsewhere.
        vignette: (H, W) float32 radial fall-off factor.
    """

    radiance: np.ndarray
    depth: np.ndarray
    kind: np.ndarray
    floor_xy: np.ndarray
    vignette: np.ndarray


def _box_corners(box: StaticBox) -> np.ndarray:
    """(8, 3) corners of a world-aligned box in box_corners() order."""
    idx = np.array([[ix, iy, iz] for ix in (0, 1) for iy in (0, 1) for iz in (0, 1)])
    return np.where(idx == 0, box.lo, box.hi)


def render_background(camera: CameraSpec, layout: Layout, lighting: Lighting, rays: np.ndarray,
                      seed: int) -> Background:
    """Ray cast and shade the static scene for ``camera``.

    Args:
        rays: (H, W, 3) float32 world ray directions (:func:`cameras.pixel_rays`).
        seed: texture seed of the scene (the same for all its cameras, so textures agree).
    """
    h, w = camera.height, camera.width
    origin = camera.position
    dirs = rays.reshape(-1, 3)
    n = len(dirs)

    # Room: floor, walls, ceiling.
    t, surface = raycast.cast_room(origin, dirs, layout.floor_min, layout.floor_max, layout.wall_height)
    kind = np.where(surface == raycast.SURFACE_FLOOR, KIND_FLOOR,
                    np.where(surface == raycast.SURFACE_CEILING, KIND_CEILING, KIND_WALL)).astype(np.uint8)
    normal = np.zeros((n, 3), dtype=np.float32)
    normal[surface == raycast.SURFACE_FLOOR] = (0, 0, 1)
    normal[surface == raycast.SURFACE_CEILING] = (0, 0, -1)
    normal[surface == raycast.SURFACE_WALL_X0] = (1, 0, 0)
    normal[surface == raycast.SURFACE_WALL_X1] = (-1, 0, 0)
    normal[surface == raycast.SURFACE_WALL_Y0] = (0, 1, 0)
    normal[surface == raycast.SURFACE_WALL_Y1] = (0, -1, 0)

    # Doors: rays through an opening continue into a dark corridor box behind the wall.
    for door in layout.doors:
        side_surface = {"x0": raycast.SURFACE_WALL_X0, "x1": raycast.SURFACE_WALL_X1,
                        "y0": raycast.SURFACE_WALL_Y0, "y1": raycast.SURFACE_WALL_Y1}[door.side]
        sel = np.flatnonzero(surface == side_surface)
        if len(sel) == 0:
            continue
        p = origin + t[sel, None] * dirs[sel]
        along = p[:, 1] if door.side in ("x0", "x1") else p[:, 0]
        hole = (np.abs(along - door.centre) < door.width / 2) & (p[:, 2] < door.height)
        sel = sel[hole]
        if len(sel) == 0:
            continue
        wall_point, inward = layout.door_point(door, 0.0)
        far = wall_point - inward * layout.corridor_depth
        tangent = np.array([-inward[1], inward[0]])
        corners = np.array([wall_point + tangent * door.width / 2, far - tangent * door.width / 2])
        lo = np.array([*corners.min(axis=0), 0.0]) - np.array([1e-3, 1e-3, 0])
        hi = np.array([*corners.max(axis=0), door.height]) + np.array([1e-3, 1e-3, 0])
        _, t_far = raycast.slab(origin, raycast.safe_inverse(dirs[sel]), lo[None], hi[None])
        t_exit = t_far[:, 0]
        t[sel] = t_exit
        kind[sel] = KIND_CORRIDOR
        q = origin + t_exit[:, None] * dirs[sel]
        on_floor = q[:, 2] < 1e-3 + 1e-4 * t_exit
        nrm = np.tile(np.array([*inward, 0.0], dtype=np.float32), (len(sel), 1))
        nrm[on_floor] = (0, 0, 1)
        normal[sel] = nrm

    # Static boxes, each cast only inside its projected rectangle, z-tested against what is there.
    box_id = np.full(n, -1, dtype=np.int64)
    box_axis = np.zeros(n, dtype=np.int8)
    t_img, id_img, axis_img = t.reshape(h, w), box_id.reshape(h, w), box_axis.reshape(h, w)
    for b, box in enumerate(layout.boxes):
        rect = amodal_box(_box_corners(box), camera.R, camera.t, camera.K, w, h)
        if rect is None or (r := pixel_rect(rect)) is None:
            continue
        u0, v0, u1, v1 = r
        sub = rays[v0:v1, u0:u1].reshape(-1, 3)
        hits = raycast.cast_boxes(origin, sub, box.lo[None], box.hi[None])
        t_sub = t_img[v0:v1, u0:u1]
        win = (hits.t < t_sub.reshape(-1))
        if not np.any(win):
            continue
        mask = win.reshape(v1 - v0, u1 - u0)
        t_sub[mask] = hits.t[win]
        id_img[v0:v1, u0:u1][mask] = b
        axis_img[v0:v1, u0:u1][mask] = hits.axis[win]
    on_box = box_id >= 0
    kind[on_box] = KIND_BOX
    if np.any(on_box):
        normal[on_box] = raycast.face_normals(dirs[on_box], box_axis[on_box].astype(np.int64))

    # Shading.
    point = origin[None].astype(np.float32) + t[:, None] * dirs
    fx = float(camera.K[0, 0])
    vnorm = np.linalg.norm(dirs, axis=1)
    cos_inc = np.abs(np.einsum("ij,ij->i", normal, dirs)) / vnorm
    footprint = (t * vnorm / fx / np.maximum(cos_inc, 0.1)).astype(np.float32)
    albedo = np.zeros((n, 3), dtype=np.float32)
    floorish = (kind == KIND_FLOOR)
    sel = np.flatnonzero(floorish)
    albedo[sel] = shading.floor_albedo(point[sel, 0], point[sel, 1], footprint[sel], layout, seed)
    sel = np.flatnonzero(kind == KIND_WALL)
    if len(sel):
        along = np.where(np.abs(normal[sel, 0]) > 0.5, point[sel, 1], point[sel, 0])
        albedo[sel] = shading.wall_albedo(along, point[sel, 2], footprint[sel], layout, seed)
    sel = np.flatnonzero(kind == KIND_CEILING)
    albedo[sel] = np.float32(0.04)
    sel = np.flatnonzero(kind == KIND_CORRIDOR)
    albedo[sel] = np.float32(0.05) * (1 + (normal[sel, 2:3] > 0.5))  # a dark corridor, floor a bit lighter
    sel = np.flatnonzero(on_box)
    if len(sel):
        colours = np.array([bx.colour for bx in layout.boxes], dtype=np.float32)
        idx = box_id[sel]
        base = colours[idx]
        patterns = np.array([bx.pattern for bx in layout.boxes])[idx]
        args = np.array([bx.pattern_args for bx in layout.boxes], dtype=np.float32)[idx]
        lo = np.array([bx.lo for bx in layout.boxes], dtype=np.float32)[idx]
        hi = np.array([bx.hi for bx in layout.boxes], dtype=np.float32)[idx]
        beta = shading.pattern_weight(point[sel], lo, hi, patterns, args)
        grime = shading.value_noise(point[sel, 0] + point[sel, 2], point[sel, 1] - point[sel, 2], 0.5,
                                    seed + 9)
        albedo[sel] = base * (1 - 0.3 * beta)[:, None] * (0.88 + 0.24 * grime)[:, None]

    irradiance = shading.lamp_irradiance(point[:, 0], point[:, 1], layout, lighting)
    radiance = shading.shade(albedo, normal, dirs, lighting.direction, lighting, irradiance)
    # Ceiling lamps are bright panels.
    sel = np.flatnonzero(kind == KIND_CEILING)
    if len(sel):
        px, py = point[sel, 0], point[sel, 1]
        panel = np.zeros(len(sel), dtype=bool)
        for lx, ly in layout.lamps:  # 1.2 x 0.4 m light panels
            panel |= (np.abs(px - lx) < 0.6) & (np.abs(py - ly) < 0.2)
        radiance[sel] += panel[:, None] * np.float32(1.2)

    vig = shading.vignette(w, h, camera.vignetting)
    radiance = radiance.reshape(h, w, 3) * vig[..., None]
    floor_xy = np.full((n, 2), np.nan, dtype=np.float32)
    ground = (kind == KIND_FLOOR) | ((kind == KIND_CORRIDOR) & (normal[:, 2] > 0.5))
    floor_xy[ground] = point[ground, :2]
    return Background(radiance=radiance.astype(np.float32), depth=t.reshape(h, w).astype(np.float32),
                      kind=kind.reshape(h, w), floor_xy=floor_xy.reshape(h, w, 2), vignette=vig)
