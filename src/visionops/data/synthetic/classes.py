"""Object classes of the synthetic warehouse: sizes, speeds, frequencies and part-based appearance.

Box convention (the GT's): ``scale = [w, l, h]`` with **w along the object's local x = its heading
(direction of motion)**, l along local y (to its left), h along z. So a forklift, which drives along its
long side, has ``w = 2.6, l = 1.2``; a person, deeper across the shoulders than front to back, has
``w = 0.5, l = 0.6``.

Every object is a set of axis-aligned *parts* (boxes in the object frame) that lie inside its GT box,
so the silhouette is class-distinctive (legs and a head for a person, a mast and forks for a forklift)
while the GT box stays the tight 3D box. Part coordinates are written normalised to the box:
x and y in [-0.5, 0.5] (times w and l), z in [0, 1] from the floor (times h). Limbs *swing* along x with
the gait phase, bounded so they never leave the box.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from visionops.data.schema import CLASS_NAMES_2025

# Pattern ids understood by shading.part_pattern_weight: the weight blends a part's colour (0) into its
# second colour (1) as a function of the hit point.
PATTERN_SOLID = 0
PATTERN_HBANDS = 1  # horizontal bands along z, period p, duty d (shirts, reflective vests)
PATTERN_HAZARD = 2  # diagonal stripes, period p (yellow/black warning bands)
PATTERN_BAND = 3  # a single band in part-relative z in [a, b] (accent stripes on robots)
PATTERN_CHECKER = 4  # 3D checker of cell p (cardboard, plastic wrap variation)


@dataclass(frozen=True)
class Part:
    """One box of an object, in normalised box coordinates.

    Attributes:
        name: for debugging only.
        material: key into the class palette.
        x, y: (lo, hi) in [-0.5, 0.5], fractions of w and l.
        z: (lo, hi) in [0, 1], fractions of h above the floor.
        swing: gait amplitude along x as a fraction of w; the sign gives the phase (left/right legs).
        pattern: PATTERN_* id; ``pattern_args`` its (p, d) or (a, b) parameters.
        optional: probability that an instance has this part (1 = always).
        group: optional parts of one group come and go together (a pallet and its load).
    """

    name: str
    material: str
    x: tuple[float, float]
    y: tuple[float, float]
    z: tuple[float, float]
    swing: float = 0.0
    pattern: int = PATTERN_SOLID
    pattern_args: tuple[float, float] = (0.0, 0.0)
    optional: float = 1.0
    group: str = ""


def _rgb(*values: tuple[int, int, int]) -> tuple[tuple[float, float, float], ...]:
    """sRGB 0-255 triples -> linear 0-1 (the renderer shades in linear light)."""
    return tuple(tuple(float((c / 255.0) ** 2.2) for c in v) for v in values)


@dataclass(frozen=True)
class ClassSpec:
    """Size, motion and appearance of one class.

    Attributes:
        name: the exact GT string (``"Person"``...).
        size: mean ``(w, l, h)`` metres; w along the heading.
        size_jitter: relative standard deviation of each instance's size.
        cruise_speed: (lo, hi) m/s, an instance's cruise speed is drawn uniformly.
        max_accel: m/s^2, tangential.
        max_turn_rate: rad/s.
        stride: metres travelled per gait cycle (limb swing); 0 for wheeled classes.
        weight: relative frequency, from the 2025 train+val instance counts.
        palette: material -> candidate linear RGB colours.
        second: material -> the second colour of its pattern (None: a darker shade of the first).
        parts: the parts.
        shadow: darkness of the blob shadow under the object, 0..1.
    """

    name: str
    size: tuple[float, float, float]
    size_jitter: float
    cruise_speed: tuple[float, float]
    max_accel: float
    max_turn_rate: float
    stride: float
    weight: float
    palette: dict[str, tuple[tuple[float, float, float], ...]]
    parts: tuple[Part, ...]
    second: dict[str, tuple[float, float, float] | None] = field(default_factory=dict)
    shadow: float = 0.45

    @property
    def clearance(self) -> float:
        """Distance (m) the path of the object's centre keeps from racks and walls."""
        w, l, _ = self.size
        return max(l / 2 + 0.45, 0.3 * w + 0.2)

    @property
    def radius(self) -> float:
        """Half the footprint diagonal (m): the object's extent in any direction on the floor."""
        w, l, _ = self.size
        return 0.5 * float(np.hypot(w, l))


_BLACK = _rgb((22, 22, 22))[0]
_HIVIS = _rgb((215, 215, 200))[0]

PERSON = ClassSpec(
    name="Person",
    size=(0.5, 0.6, 1.75),
    size_jitter=0.06,
    cruise_speed=(1.0, 1.45),
    max_accel=1.2,
    max_turn_rate=2.5,
    stride=1.4,
    weight=292,
    shadow=0.4,
    palette={
        "skin": _rgb((224, 172, 125), (198, 134, 90), (141, 85, 56), (250, 210, 175), (105, 70, 50)),
        "hair": _rgb((30, 25, 20), (85, 55, 35), (150, 115, 70), (120, 120, 120),
                     (240, 200, 30), (235, 235, 235), (240, 120, 20)),  # last three: hard hats
        "shirt": _rgb((190, 45, 45), (40, 80, 170), (225, 225, 225), (45, 45, 50), (60, 130, 70),
                      (235, 120, 25), (205, 225, 50), (110, 60, 130), (150, 150, 160)),
        "pants": _rgb((40, 50, 85), (30, 30, 32), (95, 85, 60), (70, 70, 78), (55, 65, 45)),
        "shoes": _rgb((25, 22, 20), (60, 45, 35), (200, 200, 200)),
    },
    second={"shirt": _HIVIS},
    parts=(
        Part("leg_l", "pants", (-0.16, 0.16), (0.04, 0.26), (0.03, 0.47), swing=0.26),
        Part("leg_r", "pants", (-0.16, 0.16), (-0.26, -0.04), (0.03, 0.47), swing=-0.26),
        Part("shoe_l", "shoes", (-0.14, 0.22), (0.05, 0.25), (0.0, 0.035), swing=0.26),
        Part("shoe_r", "shoes", (-0.14, 0.22), (-0.25, -0.05), (0.0, 0.035), swing=-0.26),
        Part("torso", "shirt", (-0.2, 0.2), (-0.3, 0.3), (0.46, 0.81), pattern=PATTERN_HBANDS,
             pattern_args=(0.14, 0.22)),
        Part("arm_l", "shirt", (-0.1, 0.1), (0.31, 0.45), (0.45, 0.8), swing=-0.2),
        Part("arm_r", "shirt", (-0.1, 0.1), (-0.45, -0.31), (0.45, 0.8), swing=0.2),
        Part("hand_l", "skin", (-0.08, 0.08), (0.32, 0.44), (0.4, 0.45), swing=-0.2),
        Part("hand_r", "skin", (-0.08, 0.08), (-0.44, -0.32), (0.4, 0.45), swing=0.2),
        Part("neck", "skin", (-0.07, 0.07), (-0.07, 0.07), (0.81, 0.85)),
        Part("head", "skin", (-0.18, 0.2), (-0.14, 0.14), (0.85, 0.975)),
        Part("hair", "hair", (-0.2, 0.13), (-0.15, 0.15), (0.945, 1.0)),
        Part("backpack", "pants", (-0.42, -0.2), (-0.2, 0.2), (0.55, 0.78), optional=0.15),
    ),
)

FORKLIFT = ClassSpec(
    name="Forklift",
    size=(2.6, 1.2, 2.2),
    size_jitter=0.04,
    cruise_speed=(1.6, 2.2),
    max_accel=0.9,
    max_turn_rate=0.9,
    stride=0.0,
    weight=13,
    shadow=0.55,
    palette={
        "body": _rgb((235, 175, 25), (225, 95, 25), (195, 40, 30), (45, 115, 65), (40, 80, 150)),
        "metal": _rgb((62, 62, 66), (95, 95, 100), (40, 40, 42)),
        "tyre": _rgb((24, 24, 24)),
        "seat": _rgb((30, 30, 32), (50, 40, 35)),
        "frame": _rgb((35, 35, 38), (55, 55, 60)),
        "load": _rgb((165, 120, 75), (190, 150, 100), (200, 205, 215), (70, 110, 170)),
        "pallet": _rgb((150, 115, 75), (120, 95, 65)),
    },
    second={"body": _BLACK},
    parts=(
        Part("body", "body", (-0.5, 0.12), (-0.46, 0.46), (0.07, 0.36)),
        Part("counterweight", "body", (-0.5, -0.36), (-0.44, 0.44), (0.36, 0.52), pattern=PATTERN_HAZARD,
             pattern_args=(0.25, 0.5)),
        Part("hood", "body", (-0.36, -0.12), (-0.36, 0.36), (0.36, 0.47)),
        Part("seat", "seat", (-0.22, -0.08), (-0.2, 0.2), (0.36, 0.56)),
        Part("wheel_rl", "tyre", (-0.42, -0.26), (0.38, 0.5), (0.0, 0.16)),
        Part("wheel_rr", "tyre", (-0.42, -0.26), (-0.5, -0.38), (0.0, 0.16)),
        Part("wheel_fl", "tyre", (-0.02, 0.12), (0.38, 0.5), (0.0, 0.17)),
        Part("wheel_fr", "tyre", (-0.02, 0.12), (-0.5, -0.38), (0.0, 0.17)),
        Part("pillar_rl", "frame", (-0.36, -0.33), (0.41, 0.45), (0.36, 0.95)),
        Part("pillar_rr", "frame", (-0.36, -0.33), (-0.45, -0.41), (0.36, 0.95)),
        Part("pillar_fl", "frame", (0.07, 0.1), (0.41, 0.45), (0.36, 0.95)),
        Part("pillar_fr", "frame", (0.07, 0.1), (-0.45, -0.41), (0.36, 0.95)),
        Part("roof", "frame", (-0.37, 0.11), (-0.46, 0.46), (0.94, 0.98)),
        Part("mast_l", "metal", (0.14, 0.2), (0.24, 0.34), (0.03, 1.0)),
        Part("mast_r", "metal", (0.14, 0.2), (-0.34, -0.24), (0.03, 1.0)),
        Part("mast_cross", "metal", (0.14, 0.2), (-0.34, 0.34), (0.93, 0.97)),
        Part("carriage", "metal", (0.2, 0.24), (-0.36, 0.36), (0.05, 0.3)),
        Part("fork_l", "metal", (0.24, 0.5), (0.12, 0.2), (0.02, 0.045)),
        Part("fork_r", "metal", (0.24, 0.5), (-0.2, -0.12), (0.02, 0.045)),
        Part("pallet", "pallet", (0.25, 0.5), (-0.42, 0.42), (0.045, 0.11), optional=0.4, group="cargo"),
        Part("load", "load", (0.26, 0.49), (-0.4, 0.4), (0.11, 0.45), pattern=PATTERN_CHECKER,
             pattern_args=(0.35, 0.0), optional=0.4, group="cargo"),
    ),
)

NOVA_CARTER = ClassSpec(
    name="NovaCarter",
    size=(0.7, 0.5, 0.45),
    size_jitter=0.03,
    cruise_speed=(1.0, 1.5),
    max_accel=0.8,
    max_turn_rate=1.6,
    stride=0.0,
    weight=28,
    shadow=0.5,
    palette={
        "body": _rgb((52, 54, 58), (78, 80, 86), (35, 36, 40)),
        "top": _rgb((170, 172, 178), (140, 142, 148)),
        "sensor": _rgb((25, 25, 28), (60, 60, 64)),
        "accent": _rgb((118, 185, 0), (90, 160, 20)),
        "tyre": _rgb((22, 22, 22)),
    },
    second={"body": _rgb((118, 185, 0))[0]},
    parts=(
        Part("chassis", "body", (-0.48, 0.46), (-0.44, 0.44), (0.12, 0.72), pattern=PATTERN_BAND,
             pattern_args=(0.72, 0.82)),
        Part("bumper", "accent", (0.46, 0.5), (-0.4, 0.4), (0.2, 0.38)),
        Part("top", "top", (-0.46, 0.44), (-0.42, 0.42), (0.72, 0.78)),
        Part("sensor", "sensor", (0.1, 0.36), (-0.14, 0.14), (0.78, 1.0)),
        Part("wheel_fl", "tyre", (0.18, 0.4), (0.44, 0.5), (0.0, 0.3)),
        Part("wheel_fr", "tyre", (0.18, 0.4), (-0.5, -0.44), (0.0, 0.3)),
        Part("wheel_rl", "tyre", (-0.4, -0.18), (0.44, 0.5), (0.0, 0.3)),
        Part("wheel_rr", "tyre", (-0.4, -0.18), (-0.5, -0.44), (0.0, 0.3)),
    ),
)

TRANSPORTER = ClassSpec(
    name="Transporter",
    size=(1.4, 0.9, 0.35),
    size_jitter=0.04,
    cruise_speed=(1.0, 1.4),
    max_accel=0.6,
    max_turn_rate=1.0,
    stride=0.0,
    weight=23,
    shadow=0.55,
    palette={
        "body": _rgb((60, 72, 95), (225, 225, 222), (235, 180, 35), (90, 92, 98)),
        "top": _rgb((55, 55, 58), (80, 80, 84)),
        "bumper": _rgb((235, 185, 20)),
        "tyre": _rgb((22, 22, 22)),
    },
    second={"bumper": _BLACK},
    parts=(
        Part("body", "body", (-0.46, 0.46), (-0.5, 0.5), (0.14, 0.8)),
        Part("bumper_f", "bumper", (0.46, 0.5), (-0.48, 0.48), (0.14, 0.62), pattern=PATTERN_HAZARD,
             pattern_args=(0.16, 0.5)),
        Part("bumper_r", "bumper", (-0.5, -0.46), (-0.48, 0.48), (0.14, 0.62), pattern=PATTERN_HAZARD,
             pattern_args=(0.16, 0.5)),
        Part("top", "top", (-0.47, 0.47), (-0.47, 0.47), (0.8, 1.0)),
        Part("wheel_fl", "tyre", (0.25, 0.4), (0.35, 0.48), (0.0, 0.16)),
        Part("wheel_fr", "tyre", (0.25, 0.4), (-0.48, -0.35), (0.0, 0.16)),
        Part("wheel_rl", "tyre", (-0.4, -0.25), (0.35, 0.48), (0.0, 0.16)),
        Part("wheel_rr", "tyre", (-0.4, -0.25), (-0.48, -0.35), (0.0, 0.16)),
    ),
)

FOURIER_GR1T2 = ClassSpec(
    name="FourierGR1T2",
    size=(0.45, 0.6, 1.65),
    size_jitter=0.02,
    cruise_speed=(0.6, 0.9),
    max_accel=0.6,
    max_turn_rate=1.2,
    stride=0.9,
    weight=6,
    shadow=0.4,
    palette={
        "shell": _rgb((228, 228, 224), (210, 212, 215), (190, 192, 196)),
        "joint": _rgb((38, 38, 40), (55, 55, 60)),
        "visor": _rgb((18, 18, 28)),
        "accent": _rgb((70, 72, 78), (40, 90, 160)),
    },
    parts=(
        Part("thigh_l", "shell", (-0.2, 0.2), (0.06, 0.28), (0.28, 0.51), swing=0.22),
        Part("thigh_r", "shell", (-0.2, 0.2), (-0.28, -0.06), (0.28, 0.51), swing=-0.22),
        Part("knee_l", "joint", (-0.16, 0.2), (0.08, 0.26), (0.24, 0.28), swing=0.22),
        Part("knee_r", "joint", (-0.16, 0.2), (-0.26, -0.08), (0.24, 0.28), swing=-0.22),
        Part("shin_l", "shell", (-0.17, 0.17), (0.08, 0.26), (0.04, 0.24), swing=0.22),
        Part("shin_r", "shell", (-0.17, 0.17), (-0.26, -0.08), (0.04, 0.24), swing=-0.22),
        Part("foot_l", "joint", (-0.2, 0.28), (0.07, 0.27), (0.0, 0.04), swing=0.22),
        Part("foot_r", "joint", (-0.2, 0.28), (-0.27, -0.07), (0.0, 0.04), swing=-0.22),
        Part("pelvis", "joint", (-0.2, 0.2), (-0.26, 0.26), (0.5, 0.57)),
        Part("torso", "shell", (-0.28, 0.26), (-0.3, 0.3), (0.57, 0.82)),
        Part("chest", "accent", (0.26, 0.3), (-0.2, 0.2), (0.64, 0.78)),
        Part("arm_l", "shell", (-0.11, 0.11), (0.31, 0.45), (0.5, 0.8), swing=-0.18),
        Part("arm_r", "shell", (-0.11, 0.11), (-0.45, -0.31), (0.5, 0.8), swing=0.18),
        Part("neck", "joint", (-0.08, 0.08), (-0.08, 0.08), (0.82, 0.86)),
        Part("head", "shell", (-0.2, 0.2), (-0.13, 0.13), (0.86, 1.0)),
        Part("visor", "visor", (0.2, 0.24), (-0.1, 0.1), (0.89, 0.97)),
    ),
)

AGILITY_DIGIT = ClassSpec(
    name="AgilityDigit",
    size=(0.5, 0.6, 1.75),
    size_jitter=0.02,
    cruise_speed=(0.7, 1.0),
    max_accel=0.6,
    max_turn_rate=1.2,
    stride=1.0,
    weight=1,
    shadow=0.4,
    palette={
        "body": _rgb((70, 74, 82), (40, 52, 75), (110, 112, 118)),
        "limb": _rgb((150, 150, 156), (120, 122, 128)),
        "joint": _rgb((28, 28, 30)),
        "sensor": _rgb((20, 20, 22), (200, 200, 205)),
    },
    second={"body": _rgb((230, 140, 30))[0]},
    parts=(
        # Digit's knees bend backwards: thighs lean forward, shins sit behind them.
        Part("thigh_l", "limb", (-0.05, 0.26), (0.07, 0.25), (0.3, 0.56), swing=0.2),
        Part("thigh_r", "limb", (-0.05, 0.26), (-0.25, -0.07), (0.3, 0.56), swing=-0.2),
        Part("shin_l", "limb", (-0.3, 0.0), (0.08, 0.24), (0.05, 0.32), swing=0.2),
        Part("shin_r", "limb", (-0.3, 0.0), (-0.24, -0.08), (0.05, 0.32), swing=-0.2),
        Part("foot_l", "joint", (-0.26, 0.2), (0.07, 0.25), (0.0, 0.05), swing=0.2),
        Part("foot_r", "joint", (-0.26, 0.2), (-0.25, -0.07), (0.0, 0.05), swing=-0.2),
        Part("hip", "joint", (-0.18, 0.18), (-0.26, 0.26), (0.53, 0.58)),
        Part("torso", "body", (-0.3, 0.3), (-0.3, 0.3), (0.58, 0.85), pattern=PATTERN_BAND,
             pattern_args=(0.05, 0.14)),
        Part("arm_l", "limb", (-0.1, 0.12), (0.32, 0.46), (0.48, 0.82), swing=-0.16),
        Part("arm_r", "limb", (-0.1, 0.12), (-0.46, -0.32), (0.48, 0.82), swing=0.16),
        Part("head", "sensor", (-0.1, 0.2), (-0.18, 0.18), (0.85, 0.97)),
        Part("lidar", "joint", (-0.07, 0.09), (-0.08, 0.08), (0.97, 1.0)),
    ),
)

CLASS_SPECS: dict[str, ClassSpec] = {
    spec.name: spec for spec in (PERSON, FORKLIFT, NOVA_CARTER, TRANSPORTER, FOURIER_GR1T2, AGILITY_DIGIT)
}
assert tuple(CLASS_SPECS) == CLASS_NAMES_2025
