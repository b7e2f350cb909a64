"""Scene trajectories: which object does what (stay, enter through a door, leave), simulated frame by frame.

:func:`simulate_tracks` places the agents, gives them roles and routes on each class's navigation graph
(:mod:`.navigation`), steps them with :class:`.agents.Simulator`, and returns one :class:`Track` per
object: box centre, size and yaw per frame, the yaw being the direction of motion. Objects are present
only while their footprint overlaps the floor (entering and leaving through doors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from visionops.data.schema import box_corners
from visionops.data.synthetic.agents import Agent, Leg, Simulator, door_points, wander_leg
from visionops.data.synthetic.classes import CLASS_SPECS
from visionops.data.synthetic.layout import Door, Layout
from visionops.data.synthetic.navigation import NavGraph
from visionops.data.synthetic.population import Instance

ROLE_STAY, ROLE_ENTER, ROLE_LEAVE = "stay", "enter", "leave"


@dataclass
class Track:
    """An object over the clip.

    Attributes:
        instance: its class, size and appearance.
        object_id: GT ``object id`` (unique in the scene).
        xy: (T, 2) footprint centre, metres; yaw: (T,) heading, radians in (-pi, pi];
        speed: (T,) m/s; gait: (T,) gait phase, radians.
        present: (T,) whether the object is in the scene: its footprint overlaps the floor. Only
            present frames are annotated and rendered.
        role: "stay", "enter" or "leave".
    """

    instance: Instance
    object_id: int
    xy: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    gait: np.ndarray
    present: np.ndarray
    role: str = ROLE_STAY

    @property
    def cls(self) -> str:
        return self.instance.cls

    def location(self, frame: int) -> np.ndarray:
        """(3,) box centroid at ``frame``."""
        return np.array([self.xy[frame, 0], self.xy[frame, 1], self.instance.scale[2] / 2])

    def rotation(self, frame: int) -> np.ndarray:
        """(3,) GT rotation ``[pitch, roll, yaw]``."""
        return np.array([0.0, 0.0, float(self.yaw[frame])])

    def corners(self, frame: int) -> np.ndarray:
        """(8, 3) world corners of the GT box at ``frame``."""
        return box_corners(self.location(frame), self.instance.scale, self.rotation(frame))

    def swing_gain(self, frame: int) -> float:
        """Limb swing amplitude factor: full at cruise speed, none standing."""
        return float(min(1.0, self.speed[frame] / max(self.instance.cruise_speed, 1e-6)))


def footprint_overlaps_floor(xy: np.ndarray, yaw: float, scale: np.ndarray, layout: Layout) -> bool:
    """Does the object's footprint rectangle overlap the floor? (A corner or the centre inside it: the
    floor is larger than any object, and doors are away from the floor's corners.)"""
    c, s = math.cos(yaw), math.sin(yaw)
    hw, hl = scale[0] / 2, scale[1] / 2
    pts = np.array([[0, 0], [hw, hl], [hw, -hl], [-hw, hl], [-hw, -hl]]) @ np.array([[c, s], [-s, c]]) + xy
    return bool(np.any(layout.inside_floor(pts)))


# --------------------------------------------------------------------------------------------------
# scene simulation
# --------------------------------------------------------------------------------------------------


def assign_roles(rng: np.random.Generator, count: int, has_doors: bool) -> list[str]:
    """About 60 % of objects are inside from the start, 20 % enter and 20 % leave during the clip;
    with four or more objects at least one enters and one leaves."""
    if not has_doors:
        return [ROLE_STAY] * count
    roles = list(rng.choice([ROLE_STAY, ROLE_ENTER, ROLE_LEAVE], size=count, p=[0.6, 0.2, 0.2]))
    if count >= 4:
        for role in (ROLE_ENTER, ROLE_LEAVE):
            if role not in roles:
                stays = [i for i, r in enumerate(roles) if r == ROLE_STAY]
                roles[stays[rng.integers(len(stays))]] = role
    return [str(r) for r in roles]


def simulate_tracks(seed: np.random.SeedSequence, layout: Layout, instances: list[Instance], frames: int,
                    fps: float, roles: list[str] | None = None, first_id: int = 0) -> list[Track]:
    """Simulate ``instances`` over ``frames`` frames; object ids ``first_id, first_id + 1, ...``.

    Args:
        seed: per-object generators are spawned from it (adding objects does not change the others').
        roles: per object "stay" / "enter" / "leave" (default: :func:`assign_roles`).
    """
    rng = np.random.default_rng(seed.spawn(1)[0])
    roles = roles or assign_roles(rng, len(instances), bool(layout.doors))
    graphs: dict[float, NavGraph] = {}
    agents: list[Agent] = []
    occupied: list[tuple[np.ndarray, float]] = []
    duration = frames / fps
    for i, (inst, role, child) in enumerate(zip(instances, roles, seed.spawn(len(instances)), strict=True)):
        arng = np.random.default_rng(child)
        spec = CLASS_SPECS[inst.cls]
        key = round(spec.clearance, 2)
        if key not in graphs:
            graphs[key] = NavGraph(layout, spec.clearance)
        graph = graphs[key]
        radius = 0.5 * float(np.hypot(*inst.scale[:2]))
        agent = Agent(i, inst, graph, arng, role, spawn_frame=0, pos=np.zeros(2), heading=0.0, speed=0.0)
        if role == ROLE_ENTER:
            door = layout.doors[arng.integers(len(layout.doors))]
            outside, inside = door_points(layout, door, inst, graph)
            agent.spawn_frame = int(arng.uniform(0.0, 0.6) * frames)
            agent.pos = outside
            _, n = layout.door_point(door, 0.0)
            agent.heading = math.atan2(n[1], n[0])
            agent.speed = inst.cruise_speed
            first = wander_leg(agent, inside)
            agent.legs = [Leg(np.concatenate([outside[None], first.path]), first.pause, False)]
        else:
            node = _start_node(agent, graph, occupied, radius, role, layout, duration)
            agent.pos = graph.nodes[node].copy()
            if role == ROLE_LEAVE:
                door = _nearest_door_by_path(agent, layout)
                outside, inside = door_points(layout, door, inst, graph)
                path = graph.route(agent.pos, graph.nearest_node(inside, graph.component[node]))
                agent.legs = [Leg(np.concatenate([path, inside[None], outside[None]]), 0.0, True)]
            else:
                agent.legs = [wander_leg(agent, agent.pos.copy())]
            d = agent.leg.path[min(1, len(agent.leg.path) - 1)] - agent.pos
            moving = np.linalg.norm(d) > 1e-6
            agent.heading = math.atan2(d[1], d[0]) if moving else float(arng.uniform(-np.pi, np.pi))
            agent.speed = inst.cruise_speed if arng.random() < 0.85 else 0.0
            occupied.append((agent.pos, radius))
        agents.append(agent)

    sim = Simulator(layout, agents, fps)
    n = len(agents)
    xy = np.zeros((n, frames, 2))
    yaw = np.zeros((n, frames))
    speed = np.zeros((n, frames))
    gait = np.zeros((n, frames))
    alive = np.zeros((n, frames), dtype=bool)
    for f in range(frames):
        if f > 0:
            sim.step(f)
        else:
            for a in agents:
                a.alive = a.spawn_frame == 0
        for a in agents:
            xy[a.index, f], yaw[a.index, f], speed[a.index, f] = a.pos, a.heading, a.speed if a.alive else 0.0
            gait[a.index, f], alive[a.index, f] = a.gait, a.alive
    tracks = []
    for a in agents:
        present = np.array([alive[a.index, f] and footprint_overlaps_floor(xy[a.index, f], yaw[a.index, f],
                                                                           a.instance.scale, layout)
                            for f in range(frames)])
        tracks.append(Track(a.instance, first_id + a.index, xy[a.index], yaw[a.index], speed[a.index],
                            gait[a.index], present, a.role))
    return tracks


def _start_node(agent: Agent, graph: NavGraph, occupied: list[tuple[np.ndarray, float]], radius: float,
                role: str, layout: Layout, duration: float) -> int:
    """A free start node, away from already placed objects; for leavers, one whose path to a door is
    30-80 % of the distance the object covers in the clip (so it leaves during the clip)."""
    rng = agent.rng
    main = np.bincount(graph.component).argmax()
    candidates = np.flatnonzero(graph.component == main)
    if role == ROLE_LEAVE and layout.doors:
        door_nodes = [graph.nearest_node(door_points(layout, d, agent.instance, graph)[1], main)
                      for d in layout.doors]
        dist = np.min([graph.distances(dn)[0] for dn in door_nodes], axis=0)
        reach = agent.instance.cruise_speed * duration
        band = candidates[(dist[candidates] >= 0.3 * reach) & (dist[candidates] <= 0.8 * reach)]
        closest = candidates[np.argsort(np.abs(dist[candidates] - 0.5 * reach))[:10]]
        candidates = band if len(band) else closest
    order = rng.permutation(candidates)
    for node in order:
        # Far enough apart that even a forklift at cruise speed can brake before touching anyone.
        if _gap(graph.nodes[node], radius, occupied) > 2.0:
            return int(node)
    # The preferred nodes (a leaver's band) are all taken: the roomiest node of the main component instead.
    # Starting inside another object would leave both stuck in each other for the whole clip.
    everything = rng.permutation(np.flatnonzero(graph.component == main))
    gaps = np.array([_gap(graph.nodes[node], radius, occupied) for node in everything])
    return int(everything[int(np.argmax(gaps))])


def _gap(p: np.ndarray, radius: float, occupied: list[tuple[np.ndarray, float]]) -> float:
    """Metres between a circle of ``radius`` at ``p`` and the nearest occupied circle (inf when none)."""
    return min((float(np.linalg.norm(p - q)) - radius - r for q, r in occupied), default=float("inf"))


def _nearest_door_by_path(agent: Agent, layout: Layout) -> Door:
    g = agent.graph
    src = g.nearest_node(agent.pos)
    dist, _ = g.distances(src)
    costs = [dist[g.nearest_node(door_points(layout, d, agent.instance, g)[1], g.component[src])]
             for d in layout.doors]
    return layout.doors[int(np.argmin(costs))]
