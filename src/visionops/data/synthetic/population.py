"""Populating a scene: which classes appear how often, and sampling one object instance of a class.

An :class:`Instance` is a concrete object: its box size (the class size with jitter) and its parts'
geometry and colours (the class palette with per-instance variation). Class frequencies follow the
real 2025 train+val counts (Person most common) while every configured class still appears.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionops.data.schema import CLASS_NAMES_2025
from visionops.data.synthetic.classes import CLASS_SPECS, PATTERN_HBANDS, PATTERN_SOLID, ClassSpec

# --------------------------------------------------------------------------------------------------
# instances
# --------------------------------------------------------------------------------------------------


@dataclass
class Instance:
    """One sampled object: its size and the parts' geometry and colours.

    Attributes:
        cls: class name.
        scale: (3,) ``[w, l, h]`` metres.
        lo, hi: (P, 3) part bounds in the object frame (origin at the box centroid, x = heading, z up),
            metres, at gait phase 0.
        swing: (P,) limb amplitude along x, metres (signed).
        colour, colour2: (P, 3) linear RGB, the pattern's two colours.
        pattern: (P,) int PATTERN_* ids; pattern_args: (P, 2).
        cruise_speed: m/s.
    """

    cls: str
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    swing: np.ndarray
    colour: np.ndarray
    colour2: np.ndarray
    pattern: np.ndarray
    pattern_args: np.ndarray
    cruise_speed: float

    @property
    def spec(self) -> ClassSpec:
        return CLASS_SPECS[self.cls]

    def parts_at(self, gait_phase: float, swing_gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(P, 3) lo and hi of the parts with limbs swung to ``gait_phase`` (radians).

        ``swing_gain`` in [0, 1] scales the amplitude (standing still -> limbs together).
        """
        dx = self.swing * (np.sin(gait_phase) * swing_gain)
        lo, hi = self.lo.copy(), self.hi.copy()
        lo[:, 0] += dx
        hi[:, 0] += dx
        return lo, hi


def _jitter_colour(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    """Per-instance variation: brightness and a little hue shift, in linear RGB."""
    gain = np.exp(rng.normal(0.0, amount))
    tint = np.exp(rng.normal(0.0, amount * 0.4, size=3))
    return np.clip(colour * gain * tint, 0.0, 1.0)


def sample_instance(rng: np.random.Generator, cls: str) -> Instance:
    """Draw an instance of ``cls``: size jitter, optional parts, colours per material, patterns."""
    spec = CLASS_SPECS[cls]
    scale = np.array(spec.size) * np.exp(rng.normal(0.0, spec.size_jitter, size=3))
    # One colour per material, so both legs share the trousers' colour.
    base = {m: np.array(opts[rng.integers(len(opts))]) for m, opts in spec.palette.items()}
    material_colour = {m: _jitter_colour(rng, c, 0.12) for m, c in base.items()}
    draws: dict[str, float] = {}
    parts = [p for p in spec.parts
             if p.optional >= 1.0 or draws.setdefault(p.group or p.name, rng.random()) < p.optional]
    # Some shirts are plain, some striped, some hi-vis vests; other patterns are fixed per class.
    plain_shirt = rng.random() < 0.55
    lo, hi, swing, colour, colour2, pattern, args = [], [], [], [], [], [], []
    w, l, h = scale
    for part in parts:
        lo.append([part.x[0] * w, part.y[0] * l, (part.z[0] - 0.5) * h])
        hi.append([part.x[1] * w, part.y[1] * l, (part.z[1] - 0.5) * h])
        swing.append(part.swing * w)
        c = material_colour[part.material]
        second = spec.second.get(part.material)
        c2 = np.array(second) if second is not None else c * 0.55
        pat, pargs = part.pattern, part.pattern_args
        if part.material == "shirt" and pat == PATTERN_HBANDS:
            if plain_shirt:
                pat = PATTERN_SOLID
            elif rng.random() < 0.5:  # striped shirt in a random second colour
                c2 = material_colour["pants"] * 1.2
                pargs = (float(rng.uniform(0.06, 0.14)), 0.5)
        colour.append(c)
        colour2.append(c2)
        pattern.append(pat)
        args.append(pargs)
    lo_a, hi_a = np.array(lo), np.array(hi)
    assert np.all(lo_a < hi_a)
    reach = np.abs(np.array(swing))[:, None] * np.array([1.0, 0.0, 0.0])  # limbs swing along x
    half = scale / 2 + 1e-9
    assert np.all(lo_a - reach >= -half) and np.all(hi_a + reach <= half), f"{cls}: a part leaves the GT box"
    return Instance(
        cls=cls,
        scale=scale,
        lo=lo_a,
        hi=hi_a,
        swing=np.array(swing),
        colour=np.array(colour),
        colour2=np.array(colour2),
        pattern=np.array(pattern, dtype=np.int64),
        pattern_args=np.array(args, dtype=np.float64),
        cruise_speed=float(rng.uniform(*spec.cruise_speed)),
    )


# --------------------------------------------------------------------------------------------------
# class mix
# --------------------------------------------------------------------------------------------------


def fill_weights(classes: list[str]) -> np.ndarray:
    """Sampling probabilities of ``classes`` for the free slots of a scene.

    The square root of the real instance counts: Person stays the most common class (about half of
    the free slots) while the rare robots still show up in a small dataset.
    """
    w = np.sqrt(np.array([CLASS_SPECS[c].weight for c in classes], dtype=np.float64))
    return w / w.sum()


def choose_classes(rng: np.random.Generator, classes: list[str], count: int, scene_index: int) -> list[str]:
    """Class of each object of a scene.

    Every scene guarantees up to three non-Person classes, rotating through them with the scene index
    so that two scenes already cover all five; the remaining slots are drawn with :func:`fill_weights`.
    People are at least a third of the objects when ``Person`` is among ``classes``.
    """
    unknown = sorted(set(classes) - set(CLASS_SPECS))
    if unknown:
        raise ValueError(f"unknown classes {unknown}; expected some of {list(CLASS_SPECS)}")
    if not classes:
        raise ValueError("no classes to render")
    ordered = [c for c in CLASS_NAMES_2025 if c in classes]
    others = [c for c in ordered if c != "Person"]
    people = -(-count // 3) if "Person" in ordered else 0
    k = min(3, len(others), max(count - people, 0))
    chosen = [others[(scene_index * k + j) % len(others)] for j in range(k)] if others else []
    chosen += ["Person"] * min(people, count - len(chosen))
    probs = fill_weights(ordered)
    while len(chosen) < count:
        chosen.append(ordered[int(rng.choice(len(ordered), p=probs))])
    order = rng.permutation(len(chosen))
    return [chosen[i] for i in order]
