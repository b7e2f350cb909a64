"""Render one camera of a scene: every frame's image, depth map and visible 2D boxes.

Per frame the cached background is copied and only the moving objects are ray cast, each inside its
projected 2D rectangle: first against its GT box (cheap rejection), then against its parts. A z-buffer
and an instance-id buffer make occlusion exact, between objects and with racks and walls; the
instance-id buffer gives the visible boxes. Frames go to H.264 through :class:`video.VideoWriter` and
depth (uint16 mm) through :class:`depth.DepthWriter`.

This module runs inside worker processes: :func:`render_camera` takes and returns plain data.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visionops import atomic
from visionops.data.depth import DepthWriter, metres_to_mm
from visionops.data.synthetic import raycast, shading
from visionops.data.synthetic.annotate import amodal_box, pixel_rect, visible_box
from visionops.data.synthetic.background import render_background
from visionops.data.synthetic.cameras import CameraSpec, pixel_rays
from visionops.data.synthetic.layout import Layout
from visionops.data.synthetic.motion import Track
from visionops.data.synthetic.shading import Lighting
from visionops.data.video import VideoWriter

NOISE_FRAMES = 8


@dataclass
class CameraJob:
    """Everything a worker needs to render one camera (picklable).

    Attributes:
        camera, layout, lighting, tracks: the scene.
        frames, fps: clip length and rate.
        video_path: output ``.mp4`` (None: do not encode, e.g. in tests of the raster only).
        depth_path: output ``.h5`` (None: no depth).
        crf: x264 quality.
        min_visible_pixels: fewer visible pixels than this -> no visible box.
        texture_seed: the scene's texture seed (shared by its cameras); noise_seed: this camera's.
    """

    camera: CameraSpec
    layout: Layout
    lighting: Lighting
    tracks: list[Track]
    frames: int
    fps: float
    video_path: str | None
    depth_path: str | None
    crf: int = 18
    min_visible_pixels: int = 16
    texture_seed: int = 0
    noise_seed: int = 0


@dataclass
class CameraResult:
    """What a worker returns.

    Attributes:
        camera_id: the camera.
        visible: frame -> {track index: (pixel count, (4,) box)} for objects with enough visible pixels.
        timings: seconds per stage (background, raycast, shading, composite, encode, depth).
        bytes: size of the files written.
    """

    camera_id: str
    visible: dict[int, dict[int, tuple[int, np.ndarray]]]
    timings: dict[str, float] = field(default_factory=dict)
    bytes: int = 0


class _Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, key: str, start: float) -> float:
        now = time.perf_counter()
        self.totals[key] = self.totals.get(key, 0.0) + now - start
        return now


def _flat_box_corners(xy: np.ndarray, yaw: float, rx: float, ry: float) -> np.ndarray:
    """(8, 3) corners of a floor rectangle of half sizes rx, ry (a zero-height box at z = 0)."""
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[sx * rx, sy * ry] for sx in (-1, 1) for sy in (-1, 1) for _ in (0, 1)])
    world = local @ np.array([[c, s], [-s, c]]) + xy
    return np.concatenate([world, np.zeros((8, 1))], axis=1)


class FrameRenderer:
    """Renders frames of one camera from its cached background.

    Args:
        job: the camera's job.
    """

    def __init__(self, job: CameraJob) -> None:
        self.job = job
        cam = job.camera
        self.timer = _Timer()
        start = time.perf_counter()
        self.rays = pixel_rays(cam)
        self.bg = render_background(cam, job.layout, job.lighting, self.rays, job.texture_seed)
        self.lut = shading.srgb_lut()
        self.gains = cam.gains.astype(np.float32)
        self.bg_rgb = shading.to_srgb_u8(self.bg.radiance, self.gains, self.lut)
        rng = np.random.default_rng(job.noise_seed)
        self.noise = shading.noise_bank(rng, NOISE_FRAMES, cam.height, cam.width)
        self.bg_noisy = np.stack([shading.add_noise(self.bg_rgb, nz) for nz in self.noise])
        self.bg_mm = metres_to_mm(self.bg.depth)
        self.noise_choice = rng.integers(NOISE_FRAMES, size=job.frames)
        self.zbuf = self.bg.depth.copy()
        self.idbuf = np.full((cam.height, cam.width), -1, dtype=np.int32)
        self.origin = cam.position
        self.timer.add("background", start)

    # -- per object ---------------------------------------------------------------------------------
    def _object_rect(self, track: Track, frame: int) -> tuple[int, int, int, int] | None:
        cam = self.job.camera
        box = amodal_box(track.corners(frame), cam.R, cam.t, cam.K, cam.width, cam.height)
        return None if box is None else pixel_rect(box)

    def _shadow(self, frame_rgb: np.ndarray, track: Track, frame: int) -> None:
        """Darken the floor under the object with a soft elliptical blob."""
        cam, inst = self.job.camera, track.instance
        rx, ry = inst.scale[0] / 2 + 0.45, inst.scale[1] / 2 + 0.45
        xy, yaw = track.xy[frame], float(track.yaw[frame])
        box = amodal_box(_flat_box_corners(xy, yaw, rx, ry), cam.R, cam.t, cam.K, cam.width, cam.height)
        if box is None or (r := pixel_rect(box)) is None:
            return
        u0, v0, u1, v1 = r
        fxy = self.bg.floor_xy[v0:v1, u0:u1]
        ground = np.isfinite(fxy[..., 0])
        if not np.any(ground):
            return
        d = fxy[ground] - xy.astype(np.float32)
        c, s = math.cos(yaw), math.sin(yaw)
        lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
        q = (lx / rx) ** 2 + (ly / ry) ** 2
        # (1 - q)^2 falls to exactly 0 on the ellipse, inside the rectangle: no seam at its border.
        factor = 1.0 - inst.spec.shadow * np.clip(1.0 - q, 0.0, 1.0) ** 2
        patch = frame_rgb[v0:v1, u0:u1]
        patch[ground] = (patch[ground] * factor[:, None]).astype(np.uint8)

    def _draw_object(self, frame_rgb: np.ndarray, index: int, track: Track, frame: int,
                     rect: tuple[int, int, int, int], noise: np.ndarray) -> None:
        """Ray cast one object inside ``rect``, z-test, shade the winning pixels, update the buffers."""
        start = time.perf_counter()
        inst = track.instance
        u0, v0, u1, v1 = rect
        centre = track.location(frame)
        yaw = float(track.yaw[frame])
        dirs = self.rays[v0:v1, u0:u1].reshape(-1, 3)
        z_rect = self.zbuf[v0:v1, u0:u1].reshape(-1)
        o_l, d_l = raycast.to_box_frame(self.origin, dirs, centre, yaw)
        inv = raycast.safe_inverse(d_l)
        # Cheap rejection with the GT box: only rays entering it in front of what is drawn go on.
        half = (inst.scale / 2)[None]
        t_near, t_far = raycast.slab(o_l, inv, -half, half)
        t_near, t_far = t_near[:, 0], t_far[:, 0]
        cand = np.flatnonzero((t_near <= t_far) & (t_far >= raycast.NEAR) & (t_near < z_rect))
        if len(cand) == 0:
            self.timer.add("raycast", start)
            return
        lo, hi = inst.parts_at(float(track.gait[frame]), track.swing_gain(frame))
        hits = raycast.cast_boxes(o_l, d_l[cand], lo, hi, inv_dirs=inv[cand])
        win = hits.hit & (hits.t < z_rect[cand])
        pix = cand[win]
        if len(pix) == 0:
            self.timer.add("raycast", start)
            return
        # Flat indices into the full-frame buffers (all C-contiguous, so reshape(-1) is a view).
        width = u1 - u0
        flat = (v0 + pix // width) * self.job.camera.width + (u0 + pix % width)
        t_hit = hits.t[win]
        self.zbuf.reshape(-1)[flat] = t_hit
        self.idbuf.reshape(-1)[flat] = index
        start = self.timer.add("raycast", start)

        part, axis = hits.index[win], hits.axis[win].astype(np.int64)
        d_hit = d_l[pix]
        p_local = o_l.astype(np.float32) + t_hit[:, None] * d_hit
        beta = shading.pattern_weight(p_local, lo[part], hi[part], inst.pattern[part],
                                      inst.pattern_args[part])
        c1, c2 = inst.colour[part].astype(np.float32), inst.colour2[part].astype(np.float32)
        albedo = c1 + (c2 - c1) * beta[:, None]
        normals = raycast.face_normals(d_hit, axis)
        c, s = math.cos(yaw), math.sin(yaw)
        ld = self.job.lighting.direction
        light_local = np.array([c * ld[0] + s * ld[1], -s * ld[0] + c * ld[1], ld[2]])
        irr = float(shading.lamp_irradiance(centre[0], centre[1], self.job.layout, self.job.lighting))
        radiance = shading.shade(albedo, normals, d_hit, light_local, self.job.lighting, irr)
        # Contact darkening near the floor, and the lens' vignetting.
        height = p_local[:, 2] + np.float32(inst.scale[2] / 2)
        radiance *= ((1.0 - 0.35 * np.exp(-height / 0.12)) * self.bg.vignette.reshape(-1)[flat])[:, None]
        rgb = shading.to_srgb_u8(radiance, self.gains, self.lut)
        frame_rgb.reshape(-1, 3)[flat] = shading.add_noise(rgb, noise.reshape(-1, 3)[flat])
        self.timer.add("shading", start)

    # -- per frame ----------------------------------------------------------------------------------
    def render(self, frame: int) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[int, np.ndarray]]]:
        """Frame ``frame``: (H, W, 3) uint8 image, (H, W) uint16 depth in mm, visible boxes by track index."""
        job = self.job
        start = time.perf_counter()
        k = int(self.noise_choice[frame])
        rgb = self.bg_noisy[k].copy()
        noise = self.noise[k]
        active = [i for i, tr in enumerate(job.tracks) if tr.present[frame]]
        rects: dict[int, tuple[int, int, int, int]] = {}
        for i in active:
            r = self._object_rect(job.tracks[i], frame)
            if r is not None:
                rects[i] = r
        for i in active:
            self._shadow(rgb, job.tracks[i], frame)
        start = self.timer.add("composite", start)
        # Nearest first: farther objects then fail the z-test early and are not shaded.
        order = sorted(rects, key=lambda i: float(np.linalg.norm(job.tracks[i].location(frame)
                                                                 - self.origin)))
        for i in order:
            self._draw_object(rgb, i, job.tracks[i], frame, rects[i], noise)
        start = time.perf_counter()
        visible: dict[int, tuple[int, np.ndarray]] = {}
        depth_mm = self.bg_mm.copy() if job.depth_path is not None else None
        for i, (u0, v0, u1, v1) in rects.items():
            ids = self.idbuf[v0:v1, u0:u1]
            count, box = visible_box(ids == i, u0, v0)
            if box is not None and count >= job.min_visible_pixels:
                visible[i] = (count, box)
        if depth_mm is not None:
            for (u0, v0, u1, v1) in rects.values():
                sel = self.idbuf[v0:v1, u0:u1] >= 0
                if np.any(sel):
                    depth_mm[v0:v1, u0:u1][sel] = metres_to_mm(self.zbuf[v0:v1, u0:u1][sel])
        # Reset the buffers inside the rectangles only.
        for (u0, v0, u1, v1) in rects.values():
            self.idbuf[v0:v1, u0:u1] = -1
            self.zbuf[v0:v1, u0:u1] = self.bg.depth[v0:v1, u0:u1]
        self.timer.add("composite", start)
        return rgb, depth_mm, visible


def render_camera(job: CameraJob, progress: Callable[[int], None] | None = None,
                  progress_every: int = 10) -> CameraResult:
    """Render all frames of ``job``, write its video and depth files, return its visible boxes.

    Args:
        progress: called with the number of frames done since the previous call.
    """
    renderer = FrameRenderer(job)
    timer = renderer.timer
    cam = job.camera
    visible_all: dict[int, dict[int, tuple[int, np.ndarray]]] = {}
    # Writers on temporary names, renamed into place only when every frame is written (LIFO unwinding
    # closes each writer before its rename).
    with contextlib.ExitStack() as stack:
        video = depth = None
        if job.video_path is not None:
            tmp = stack.enter_context(atomic.atomic_path(job.video_path))
            video = stack.enter_context(VideoWriter(tmp, cam.width, cam.height, job.fps,
                                                                 crf=job.crf))
        if job.depth_path is not None:
            tmp = stack.enter_context(atomic.atomic_path(job.depth_path))
            depth = stack.enter_context(DepthWriter(tmp))
        pending = 0
        for f in range(job.frames):
            rgb, depth_mm, visible = renderer.render(f)
            visible_all[f] = visible
            start = time.perf_counter()
            if video is not None:
                video.write(rgb)
            start = timer.add("encode", start)
            if depth is not None:
                depth.write(f, depth_mm)
            timer.add("depth", start)
            pending += 1
            if progress is not None and (pending >= progress_every or f == job.frames - 1):
                progress(pending)
                pending = 0
    written = sum(Path(p).stat().st_size for p in (job.video_path, job.depth_path) if p is not None)
    return CameraResult(cam.id, visible_all, dict(timer.totals), written)
