"""Static warehouse layout: floor, walls with doors, pallet-rack rows with loads, floor clutter,
lane markings, ceiling lamps; and the top-down ``map.png``.

World frame: metres, z up, floor at z = 0. The floor is the rectangle ``floor_min .. floor_max``; the
world origin lies inside it, away from the corners, as in the real scenes. Racks and clutter are
unlabelled static boxes (occluders); doors are openings in the walls through which objects enter and
leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from visionops.data.calibration import world_to_map_pixels

WALL_SIDES = ("x0", "x1", "y0", "y1")
"""Wall ids: the wall at x = floor_min[0], x = floor_max[0], y = floor_min[1], y = floor_max[1]."""


def _lin(*rgb: int) -> np.ndarray:
    return (np.array(rgb, dtype=np.float64) / 255.0) ** 2.2


@dataclass
class StaticBox:
    """An unlabelled box (rack upright, beam, pallet, carton...).

    Attributes:
        lo, hi: (3,) world-aligned bounds, metres.
        colour: (3,) linear RGB.
        pattern: PATTERN_* id of :mod:`classes` (cartons use a checker), ``pattern_args`` its parameters.
        kind: "rack" (uprights and beams), "cargo" (pallets and loads in racks) or "clutter" (floor
            stacks); informative only.
    """

    lo: np.ndarray
    hi: np.ndarray
    colour: np.ndarray
    kind: str
    pattern: int = 0
    pattern_args: tuple[float, float] = (0.0, 0.0)


@dataclass
class Door:
    """An opening in a wall: ``side`` in WALL_SIDES, centre along the wall (world metres), width, height."""

    side: str
    centre: float
    width: float
    height: float


@dataclass
class Layout:
    """Everything static in a scene.

    Attributes:
        floor_min, floor_max: (2,) floor rectangle, metres.
        wall_height: metres; the ceiling closes the room there.
        doors: openings in the walls.
        boxes: racks, shelves, cargo, clutter.
        obstacles: (K, 4) ``[xmin, ymin, xmax, ymax]`` footprints objects must avoid (rack rows, clutter).
        lanes: (M, 4) painted floor rectangles ``[xmin, ymin, xmax, ymax]``; lane_colours (M, 3) linear.
        lamps: (L, 2) ceiling lamp positions (pools of light on the floor).
        slab: concrete slab size of the floor's saw-cut joints, metres.
        floor_colour, wall_colour, band_colour: (3,) linear RGB.
        band_height: painted band at the bottom of the walls, metres.
        corridor_depth: how far behind a door the (dark) corridor's back wall is, metres.
    """

    floor_min: np.ndarray
    floor_max: np.ndarray
    wall_height: float
    doors: list[Door]
    boxes: list[StaticBox]
    obstacles: np.ndarray
    lanes: np.ndarray
    lane_colours: np.ndarray
    lamps: np.ndarray
    slab: float = 5.0
    floor_colour: np.ndarray = field(default_factory=lambda: _lin(150, 148, 142))
    wall_colour: np.ndarray = field(default_factory=lambda: _lin(200, 200, 195))
    band_colour: np.ndarray = field(default_factory=lambda: _lin(90, 100, 110))
    band_height: float = 1.2
    corridor_depth: float = 5.0

    @property
    def size(self) -> np.ndarray:
        return self.floor_max - self.floor_min

    def door_point(self, door: Door, offset: float) -> tuple[np.ndarray, np.ndarray]:
        """Point ``offset`` metres inside the floor (negative: outside) in front of ``door``, and the
        (2,) unit inward normal of its wall."""
        inward = {"x0": (1.0, 0.0), "x1": (-1.0, 0.0), "y0": (0.0, 1.0), "y1": (0.0, -1.0)}[door.side]
        n = np.array(inward)
        if door.side in ("x0", "x1"):
            wall = self.floor_min[0] if door.side == "x0" else self.floor_max[0]
            p = np.array([wall, door.centre])
        else:
            wall = self.floor_min[1] if door.side == "y0" else self.floor_max[1]
            p = np.array([door.centre, wall])
        return p + offset * n, n

    def inside_floor(self, xy: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(N,) bool: points (N, 2) strictly inside the floor shrunk by ``margin``."""
        xy = np.asarray(xy).reshape(-1, 2)
        return np.all((xy > self.floor_min + margin) & (xy < self.floor_max - margin), axis=1)


# --------------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------------

_RACK_COLOURS = [_lin(30, 80, 160), _lin(225, 110, 25), _lin(40, 110, 70), _lin(60, 60, 66)]
_BEAM_COLOURS = [_lin(230, 120, 25), _lin(225, 180, 30), _lin(35, 80, 160)]
_CARGO_COLOURS = [_lin(165, 120, 75), _lin(185, 145, 95), _lin(140, 100, 60), _lin(205, 205, 210),
                  _lin(70, 110, 170), _lin(190, 60, 50), _lin(120, 150, 90)]
_PALLET_COLOURS = [_lin(150, 115, 75), _lin(120, 95, 65), _lin(60, 95, 150)]


def _cargo_boxes(rng: np.random.Generator, x0: float, x1: float, y0: float, y1: float, z0: float,
                 max_height: float, kind: str) -> list[StaticBox]:
    """A pallet with a stack of cartons on it, filling ``[x0, x1] x [y0, y1]`` from height ``z0``."""
    out = [StaticBox(np.array([x0, y0, z0]), np.array([x1, y1, z0 + 0.14]),
                     _PALLET_COLOURS[rng.integers(len(_PALLET_COLOURS))], kind)]
    if max_height < 0.35:
        return out
    height = float(rng.uniform(0.3, max_height))
    inset = rng.uniform(0.0, 0.08, size=4)
    colour = _CARGO_COLOURS[rng.integers(len(_CARGO_COLOURS))] * rng.uniform(0.85, 1.15)
    out.append(StaticBox(np.array([x0 + inset[0], y0 + inset[1], z0 + 0.14]),
                         np.array([x1 - inset[2], y1 - inset[3], z0 + 0.14 + height]),
                         np.clip(colour, 0, 1), kind, pattern=4,
                         pattern_args=(float(rng.uniform(0.3, 0.5)), 0.0)))
    return out


def _rack_row(rng: np.random.Generator, xa: float, xb: float, ya: float, yb: float, along_x: bool,
              height: float, levels: list[float], frame_colour: np.ndarray, beam_colour: np.ndarray
              ) -> list[StaticBox]:
    """Boxes of one rack row on footprint ``[xa, xb] x [ya, yb]`` whose bays run along x (or y).

    Uprights at every bay boundary (front and back), a beam pair per level, and a pallet
    with cartons in most bay slots, so the row is an occluder with gaps (rays pass between loads).
    """
    boxes: list[StaticBox] = []

    def box(lo_u, hi_u, lo_v, hi_v, z0, z1, colour, kind, **kw) -> StaticBox:
        # (u, v) = (along the row, across it) -> world (x, y).
        if along_x:
            return StaticBox(np.array([lo_u, lo_v, z0]), np.array([hi_u, hi_v, z1]), colour, kind, **kw)
        return StaticBox(np.array([lo_v, lo_u, z0]), np.array([hi_v, hi_u, z1]), colour, kind, **kw)

    u0, u1 = (xa, xb) if along_x else (ya, yb)
    v0, v1 = (ya, yb) if along_x else (xa, xb)
    post = 0.09
    bays = max(1, int(round((u1 - u0) / 2.7)))
    edges = np.linspace(u0, u1, bays + 1)
    for u in edges:
        lo_u = min(max(u - post / 2, u0), u1 - post)
        for v in (v0, v1 - post):
            boxes.append(box(lo_u, lo_u + post, v, v + post, 0.0, height, frame_colour, "rack"))
    # Pallet racking: pallets rest on the beam pairs, no decks, so the racks are see-through between loads.
    for z in levels:
        for v in (v0, v1 - 0.06):
            boxes.append(box(u0, u1, v, v + 0.06, z - 0.11, z, beam_colour, "rack"))
    # Back-to-back rows hold two pallets across their depth.
    across = [(v0 + 0.05, v1 - 0.05)] if v1 - v0 < 1.6 else [(v0 + 0.05, (v0 + v1) / 2 - 0.05),
                                                               ((v0 + v1) / 2 + 0.05, v1 - 0.05)]
    for bay in range(bays):
        b0, b1 = edges[bay] + post, edges[bay + 1] - post
        slots = max(1, int((b1 - b0) // 1.25))
        width = (b1 - b0) / slots
        # Pallets stand on each beam level and reach at most 0.2 m below the next one (or the frame top).
        for z_floor, z_top in zip(levels, [*levels[1:], height + 0.11], strict=True):
            level_gap = z_top - z_floor - 0.11
            for s in range(slots):
                for a0, a1 in across:
                    if rng.random() < 0.22:
                        continue  # an empty slot: a see-through gap
                    s0 = b0 + s * width + 0.05
                    s1 = s0 + min(width - 0.1, 1.2)
                    for c in _cargo_boxes(rng, s0, s1, a0, a1, z_floor, min(level_gap - 0.2, 1.4), "cargo"):
                        boxes.append(box(c.lo[0], c.hi[0], c.lo[1], c.hi[1], c.lo[2], c.hi[2], c.colour,
                                         "cargo", pattern=c.pattern, pattern_args=c.pattern_args))
    return boxes


def generate_layout(rng: np.random.Generator, floor_size: tuple[float, float]) -> Layout:
    """Draw a warehouse: floor placement around the origin, rack rows, clutter, doors, lanes, lamps.

    Rack rows run along the floor's long axis, leave a perimeter aisle of 2.5-3.2 m along the walls and
    aisles of 2.8-3.6 m between them, and are split by a cross aisle when long, so that every aisle is
    reachable from every door.
    """
    size = np.asarray(floor_size, dtype=np.float64)
    if np.any(size < 6.0):
        raise ValueError(f"floor_size must be at least 6 x 6 m, got {tuple(size)}")
    # Origin inside the floor, 15-45 % from the lower-left corner (never at a corner).
    floor_min = -size * rng.uniform(0.15, 0.45, size=2)
    floor_max = floor_min + size
    along_x = bool(size[0] >= size[1])
    u_lo, u_hi = (floor_min[0], floor_max[0]) if along_x else (floor_min[1], floor_max[1])
    v_lo, v_hi = (floor_min[1], floor_max[1]) if along_x else (floor_min[0], floor_max[0])

    perim = float(rng.uniform(2.5, 3.2))
    frame_colour = _RACK_COLOURS[rng.integers(len(_RACK_COLOURS))]
    beam_colour = _BEAM_COLOURS[rng.integers(len(_BEAM_COLOURS))]
    boxes: list[StaticBox] = []
    obstacles: list[list[float]] = []
    lanes: list[list[float]] = []
    lane_colours: list[np.ndarray] = []
    yellow, white = _lin(225, 185, 35), _lin(225, 225, 220)

    def to_xy(a0, a1, b0, b1) -> list[float]:
        """(u, v) rectangle -> world [xmin, ymin, xmax, ymax]."""
        return [a0, b0, a1, b1] if along_x else [b0, a0, b1, a1]

    # Rows across v, each single (1.1 m) or back-to-back (2.2 m) deep.
    v = v_lo + perim
    rows: list[tuple[float, float]] = []
    while True:
        depth = 1.1 if rng.random() < 0.5 else 2.2
        if v + depth > v_hi - perim:
            break
        rows.append((v, v + depth))
        v += depth + float(rng.uniform(2.8, 3.6))
    # Centre the block of rows across the floor.
    if rows:
        shift = ((v_hi - perim) - rows[-1][1]) / 2
        rows = [(a + shift, b + shift) for a, b in rows]
    inner_u0, inner_u1 = u_lo + perim, u_hi - perim
    for r0, r1 in rows:
        segments = [(inner_u0, inner_u1)]
        if inner_u1 - inner_u0 > 10.0:  # a cross aisle somewhere in the middle third
            third = (inner_u1 - inner_u0) / 3
            cut = float(rng.uniform(inner_u0 + third, inner_u1 - third))
            gap = float(rng.uniform(2.8, 3.4)) / 2
            segments = [(inner_u0, cut - gap), (cut + gap, inner_u1)]
        for s0, s1 in segments:
            if s1 - s0 < 2.0:
                continue
            height = float(rng.uniform(2.6, 4.2))
            # Beam levels from just above the floor, about 1.3 m apart; the top level holds loads too.
            n_levels = max(2, int(round(height / 1.3)))
            levels = [0.15 + i * (height - 0.15) / n_levels for i in range(n_levels)]
            fp = to_xy(s0, s1, r0, r1)
            boxes += _rack_row(rng, fp[0], fp[2], fp[1], fp[3], along_x, height, levels, frame_colour,
                               beam_colour)
            obstacles.append(fp)
            # Yellow aisle lines 0.35 m in front of both faces of the row.
            lanes.append(to_xy(s0, s1, r0 - 0.45, r0 - 0.35))
            lanes.append(to_xy(s0, s1, r1 + 0.35, r1 + 0.45))
            lane_colours += [yellow, yellow]

    # Perimeter walkway line and a white stop line in front of each door.
    lanes.append(to_xy(u_lo + 1.0, u_hi - 1.0, v_lo + 1.0, v_lo + 1.1))
    lanes.append(to_xy(u_lo + 1.0, u_hi - 1.0, v_hi - 1.1, v_hi - 1.0))
    lane_colours += [yellow, yellow]

    # Doors: two to three, on different walls, 2 m or more from any corner where the wall allows.
    doors: list[Door] = []
    sides = [str(side) for side in rng.permutation(WALL_SIDES)][: int(rng.integers(2, 4))]
    for side in sides:
        horizontal = side in ("y0", "y1")
        lo, hi = (floor_min[0], floor_max[0]) if horizontal else (floor_min[1], floor_max[1])
        width = min(float(rng.uniform(3.0, 3.6)), hi - lo - 2.0)
        margin = min(2.0, (hi - lo - width) / 2)  # from the corners (less on short walls)
        free = max(hi - lo - width - 2 * margin, 0.0)
        centre = float(lo + margin + width / 2 + rng.uniform(0.0, 1.0) * free)
        doors.append(Door(side, centre, width, float(rng.uniform(3.2, 3.8))))
    layout_stub = Layout(floor_min, floor_max, 0.0, doors, [], np.zeros((0, 4)), np.zeros((0, 4)),
                         np.zeros((0, 3)), np.zeros((0, 2)))
    for door in doors:
        (px, py), n = layout_stub.door_point(door, 0.6)
        t = np.array([-n[1], n[0]])
        a, b = np.array([px, py]) - t * door.width / 2, np.array([px, py]) + t * door.width / 2 + n * 0.12
        lanes.append([min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])])
        lane_colours.append(white)

    # Floor clutter: pallet stacks in the perimeter aisle corners, never in front of a door.
    corners = [(floor_min[0], floor_min[1], 1, 1), (floor_max[0], floor_min[1], -1, 1),
               (floor_min[0], floor_max[1], 1, -1), (floor_max[0], floor_max[1], -1, -1)]
    for cx, cy, sx, sy in corners:
        if rng.random() < 0.35:
            continue
        w, d = float(rng.uniform(1.0, 1.3)), float(rng.uniform(0.9, 1.2))
        x0, y0 = cx + sx * 0.25, cy + sy * 0.25
        fp = [min(x0, x0 + sx * w), min(y0, y0 + sy * d), max(x0, x0 + sx * w), max(y0, y0 + sy * d)]
        centre = np.array([(fp[0] + fp[2]) / 2, (fp[1] + fp[3]) / 2])
        near_door = (np.linalg.norm(layout_stub.door_point(dr, 0.0)[0] - centre) < dr.width / 2 + 1.5
                     for dr in doors)
        if any(near_door):
            continue
        for c in _cargo_boxes(rng, fp[0], fp[2], fp[1], fp[3], 0.0, float(rng.uniform(0.4, 1.6)), "clutter"):
            c.kind = "clutter"
            boxes.append(c)
        obstacles.append(fp)

    # Lamps on a grid of about 5 m.
    nx, ny = max(1, int(round(size[0] / 5.0))), max(1, int(round(size[1] / 5.0)))
    gx = floor_min[0] + (np.arange(nx) + 0.5) * size[0] / nx
    gy = floor_min[1] + (np.arange(ny) + 0.5) * size[1] / ny
    lamps = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1).reshape(-1, 2)

    return Layout(
        floor_min=floor_min,
        floor_max=floor_max,
        wall_height=float(rng.uniform(6.5, 8.0)),
        doors=doors,
        boxes=boxes,
        obstacles=np.array(obstacles, dtype=np.float64).reshape(-1, 4),
        lanes=np.array(lanes, dtype=np.float64).reshape(-1, 4),
        lane_colours=np.array(lane_colours, dtype=np.float64).reshape(-1, 3),
        lamps=lamps,
        slab=float(rng.uniform(4.0, 6.0)),
        floor_colour=_lin(150, 148, 142) * rng.uniform(0.85, 1.1) * np.exp(rng.normal(0, 0.03, 3)),
        wall_colour=_lin(200, 200, 195) * rng.uniform(0.9, 1.05),
        band_colour=[_lin(90, 100, 110), _lin(200, 170, 60), _lin(70, 110, 80)][rng.integers(3)],
        band_height=float(rng.uniform(1.0, 1.5)),
    )


def empty_layout(floor_min: tuple[float, float], floor_max: tuple[float, float], *, boxes=(), doors=(),
                 wall_height: float = 7.0) -> Layout:
    """A bare room (tests and explicit scenes): no racks unless ``boxes`` are given, no lanes."""
    boxes = list(boxes)
    obstacles = np.array([[b.lo[0], b.lo[1], b.hi[0], b.hi[1]] for b in boxes], dtype=np.float64)
    obstacles = obstacles.reshape(-1, 4)
    fmin, fmax = np.asarray(floor_min, dtype=np.float64), np.asarray(floor_max, dtype=np.float64)
    return Layout(fmin, fmax, wall_height, list(doors), boxes, obstacles, np.zeros((0, 4)), np.zeros((0, 3)),
                  ((fmin + fmax) / 2)[None])


# --------------------------------------------------------------------------------------------------
# map.png
# --------------------------------------------------------------------------------------------------

MAP_MARGIN_M = 1.0


@dataclass
class MapGeometry:
    """How world metres map to ``map.png`` pixels (see :func:`schema.world_to_map_pixels`)."""

    scale_factor: float
    translation: np.ndarray
    width: int
    height: int


def map_geometry(layout: Layout, scale_factor: float = 25.0) -> MapGeometry:
    """Map covering the floor plus a 1 m margin; ``px = (x + tx) s``, ``py = H - (y + ty) s``."""
    translation = -layout.floor_min + MAP_MARGIN_M
    extent = layout.size + 2 * MAP_MARGIN_M
    width, height = (int(np.ceil(v * scale_factor)) for v in extent)
    return MapGeometry(float(scale_factor), translation, width, height)


def render_map(layout: Layout, geometry: MapGeometry) -> np.ndarray:
    """(H, W, 3) uint8 top-down plan: floor, lane markings, racks, clutter, walls with door gaps."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    image = Image.new("RGB", (geometry.width, geometry.height), (235, 235, 235))
    draw = ImageDraw.Draw(image)

    def rect(xmin, ymin, xmax, ymax, fill, outline=None) -> None:
        p = world_to_map_pixels(np.array([[xmin, ymin], [xmax, ymax]]), geometry.scale_factor,
                                geometry.translation, geometry.height)
        # Map y points down: the world's (xmin, ymax) corner is the top-left one.
        draw.rectangle([float(p[0, 0]), float(p[1, 1]), float(p[1, 0]), float(p[0, 1])], fill=fill,
                       outline=outline)

    fmin, fmax = layout.floor_min, layout.floor_max
    rect(fmin[0], fmin[1], fmax[0], fmax[1], (200, 200, 196))
    for (xmin, ymin, xmax, ymax), colour in zip(layout.lanes, layout.lane_colours, strict=True):
        srgb = tuple(int(round(255 * c ** (1 / 2.2))) for c in colour)
        rect(xmin, ymin, xmax, ymax, srgb)
    for xmin, ymin, xmax, ymax in layout.obstacles:
        rect(xmin, ymin, xmax, ymax, (70, 90, 130), outline=(30, 40, 60))
    wall = 0.25
    rect(fmin[0] - wall, fmin[1] - wall, fmax[0] + wall, fmin[1], (40, 40, 40))
    rect(fmin[0] - wall, fmax[1], fmax[0] + wall, fmax[1] + wall, (40, 40, 40))
    rect(fmin[0] - wall, fmin[1], fmin[0], fmax[1], (40, 40, 40))
    rect(fmax[0], fmin[1], fmax[0] + wall, fmax[1], (40, 40, 40))
    for door in layout.doors:
        p, n = layout.door_point(door, 0.0)
        t = np.array([-n[1], n[0]]) * door.width / 2
        a, b = p + t - n * wall, p - t
        rect(min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]), (200, 200, 196))
    return np.asarray(image, dtype=np.uint8).copy()
