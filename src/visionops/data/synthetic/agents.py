"""Agents of the synthetic warehouse and how they steer, one frame at a time.

An :class:`Agent` follows route legs on the navigation graph by pure pursuit. Per step its speed changes
by at most ``max_accel * dt`` (twice that when braking), its heading by at most ``max_turn_rate * dt``,
and it moves along its heading, so trajectories are C1 and the heading is the direction of motion. The
:class:`Simulator` slows agents for corners, brakes them for anyone inside their braking envelope
(oriented-rectangle tests), gives way by index at crossings and steps them aside when stuck.
Units: metres, seconds, radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from visionops.data.synthetic.classes import CLASS_SPECS
from visionops.data.synthetic.layout import Door, Layout
from visionops.data.synthetic.navigation import NavGraph
from visionops.data.synthetic.population import Instance


def wrap_angle(a):
    """Angle(s) wrapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(a), 2 * np.pi)



@dataclass
class Leg:
    path: np.ndarray  # (K, 2)
    pause: float  # seconds to wait at the end
    exit: bool  # the route ends outside: despawn at the end


@dataclass
class Agent:
    index: int
    instance: Instance
    graph: NavGraph
    rng: np.random.Generator
    role: str
    spawn_frame: int
    pos: np.ndarray
    heading: float
    speed: float
    legs: list[Leg] = field(default_factory=list)
    seg: int = 0
    pause_left: float = 0.0
    pausing: bool = False
    alive: bool = False
    done: bool = False
    gait: float = 0.0
    aside: float = 0.0  # metres to the right (negative: left) the agent steps to get around another
    aside_time: float = 0.0
    blocked_time: float = 0.0

    @property
    def spec(self):
        return CLASS_SPECS[self.instance.cls]

    @property
    def leg(self) -> Leg:
        return self.legs[0]


def door_points(layout: Layout, door: Door, instance: Instance, graph: NavGraph
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(outside, inside) points of a door for an object: outside far enough that the object is fully
    beyond the wall, inside where its clearance holds."""
    outside, _ = layout.door_point(door, -(0.5 * float(np.hypot(*instance.scale[:2])) + 0.4))
    inside, _ = layout.door_point(door, graph.clearance + 0.3)
    return outside, inside


def _random_goal(agent: Agent, min_distance: float = 4.0) -> int:
    """A node in the agent's connected region, preferably ``min_distance`` or more away."""
    g = agent.graph
    comp = g.component[g.nearest_node(agent.pos)]
    candidates = np.flatnonzero(g.component == comp)
    far = candidates[np.linalg.norm(g.nodes[candidates] - agent.pos, axis=1) >= min_distance]
    pool = far if len(far) else candidates
    return int(pool[agent.rng.integers(len(pool))])


def wander_leg(agent: Agent, start: np.ndarray) -> Leg:
    goal = _random_goal(agent)
    path = agent.graph.route(start, goal)
    walker = agent.spec.stride > 0
    pause = float(agent.rng.uniform(0.5, 3.0)) if agent.rng.random() < (0.35 if walker else 0.2) else 0.0
    return Leg(path, pause, exit=False)


def _replan(agent: Agent, layout: Layout) -> None:
    """Give up the current leg (blocked too long): wander elsewhere, or leave by another door."""
    leaving = agent.legs and agent.legs[-1].exit
    agent.legs, agent.seg, agent.pausing = [], 0, False
    if leaving and len(layout.doors) > 1:
        door = layout.doors[agent.rng.integers(len(layout.doors))]
        outside, inside = door_points(layout, door, agent.instance, agent.graph)
        path = agent.graph.route(agent.pos, agent.graph.nearest_node(inside))
        agent.legs = [Leg(np.concatenate([path, inside[None], outside[None]]), 0.0, True)]
    else:
        agent.legs = [wander_leg(agent, agent.pos.copy())]


def _ensure_legs(agent: Agent) -> None:
    if not agent.legs:
        agent.legs.append(wander_leg(agent, agent.pos.copy()))
        agent.seg = 0


class Simulator:
    """Steps all agents together so they can yield to each other."""

    def __init__(self, layout: Layout, agents: list[Agent], fps: float) -> None:
        self.layout = layout
        self.agents = agents
        self.dt = 1.0 / fps
        self.emergency_stops = 0  # stops harder than the class can brake, to avoid a collision

    # -- path following ----------------------------------------------------------------------------
    @staticmethod
    def _progress(agent: Agent) -> tuple[float, float, int]:
        """Arc length along the leg of the closest point, the leg's length, the current segment."""
        path = agent.leg.path
        seglen = np.linalg.norm(np.diff(path, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seglen)])
        best, best_s, best_k = np.inf, 0.0, agent.seg
        for k in range(agent.seg, min(agent.seg + 3, len(path) - 1)):
            a, b = path[k], path[k + 1]
            ab = b - a
            u = float(np.clip(np.dot(agent.pos - a, ab) / max(np.dot(ab, ab), 1e-12), 0.0, 1.0))
            d = float(np.linalg.norm(a + u * ab - agent.pos))
            if d < best - 1e-9:
                best, best_s, best_k = d, cum[k] + u * seglen[k], k
        return best_s, float(cum[-1]), best_k

    @staticmethod
    def _point_at(path: np.ndarray, s: float) -> np.ndarray:
        seglen = np.linalg.norm(np.diff(path, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seglen)])
        if s >= cum[-1]:
            return path[-1].copy()
        k = int(np.searchsorted(cum, s, side="right") - 1)
        u = (s - cum[k]) / max(seglen[k], 1e-12)
        return path[k] + u * (path[k + 1] - path[k])

    @staticmethod
    def _corner_limit(agent: Agent, s: float) -> float:
        """Speed allowed now so the agent can take the next corners (within braking range) slowly."""
        path = agent.leg.path
        seg = np.diff(path, axis=0)
        seglen = np.linalg.norm(seg, axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seglen)])
        spec = agent.spec
        limit = np.inf
        for k in range(1, len(path) - 1):
            d = cum[k] - s
            if d < -0.5:
                continue
            if d > 6.0:
                break
            a0, a1 = math.atan2(seg[k - 1][1], seg[k - 1][0]), math.atan2(seg[k][1], seg[k][0])
            turn = abs(float(wrap_angle(a1 - a0)))
            if turn < 0.25:
                continue
            # Radius about 0.8 m at the corner: v = omega * r, reached by braking over d.
            v_corner = max(0.25, spec.max_turn_rate * 0.8 * (1.0 - 0.4 * turn / math.pi))
            limit = min(limit, math.sqrt(v_corner**2 + 2 * spec.max_accel * max(d, 0.0)))
        return limit

    # -- yielding ------------------------------------------------------------------------------------
    MARGIN = 0.12  # metres kept between footprints

    @staticmethod
    def _rect(agent: Agent, ahead: float = 0.0, heading: float | None = None, pos: np.ndarray | None = None,
              margin: float = MARGIN) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Oriented rectangle (centre, unit axis, half length, half width) of the footprint plus
        ``margin``, stretched ``ahead`` metres forward."""
        heading = agent.heading if heading is None else heading
        pos = agent.pos if pos is None else pos
        u = np.array([math.cos(heading), math.sin(heading)])
        w, l = agent.instance.scale[:2]
        return pos + u * (ahead / 2), u, w / 2 + ahead / 2 + margin, l / 2 + margin

    @staticmethod
    def _overlap(r1, r2) -> bool:
        """Separating-axis test of two oriented rectangles."""
        c1, u1, a1, b1 = r1
        c2, u2, a2, b2 = r2
        p1, p2 = np.array([-u1[1], u1[0]]), np.array([-u2[1], u2[0]])
        d = c2 - c1
        for axis in (u1, p1, u2, p2):
            reach = (a1 * abs(u1 @ axis) + b1 * abs(p1 @ axis) + a2 * abs(u2 @ axis) + b2 * abs(p2 @ axis))
            if abs(d @ axis) > reach:
                return False
        return True

    def _envelope(self, agent: Agent):
        """The footprint swept while braking to a stop (at twice the class acceleration), plus a step."""
        brake = agent.speed**2 / (4 * agent.spec.max_accel) + agent.speed * self.dt + 0.25
        return self._rect(agent, ahead=brake)

    def _blocked(self, agent: Agent, envelopes: dict, footprints: dict) -> Agent | None:
        """Who stops ``agent``: anyone whose footprint its braking envelope touches, or a higher-priority
        (lower index) agent whose envelope crosses its own (unless that one is stuck behind us)."""
        env = envelopes[agent.index]
        for other in self.agents:
            if other is agent or not other.alive:
                continue
            if self._overlap(env, footprints[other.index]):
                return other
            if (other.index < agent.index and self._overlap(env, envelopes[other.index])
                    and not self._overlap(envelopes[other.index], footprints[agent.index])):
                return other
        return None

    def _free(self, agent: Agent, heading: float, pos: np.ndarray, footprints: dict) -> bool:
        """May ``agent`` take this pose? Its footprint plus margin must not touch another live agent's
        (plus margin); where the two already touch, only the bare bodies must stay apart."""
        rect = self._rect(agent, heading=heading, pos=pos)
        current = footprints.get(agent.index)
        body = None
        for o in self.agents:
            if o is agent or not o.alive or o.index not in footprints:
                continue
            if not self._overlap(rect, footprints[o.index]):
                continue
            if current is None or not self._overlap(current, footprints[o.index]):
                return False
            body = body or self._rect(agent, heading=heading, pos=pos, margin=0.0)
            if self._overlap(body, self._rect(o, margin=0.0)):
                return False
        return True

    def _bodies_apart(self, agent: Agent, heading: float, pos: np.ndarray) -> bool:
        """Would ``agent``'s bare body at this pose stay clear of every other live body (no margins)?"""
        body = self._rect(agent, heading=heading, pos=pos, margin=0.0)
        return not any(self._overlap(body, self._rect(o, margin=0.0))
                       for o in self.agents if o is not agent and o.alive)

    # -- one step ----------------------------------------------------------------------------------
    def step(self, frame: int) -> None:
        dt = self.dt
        footprints = {a.index: self._rect(a) for a in self.agents if a.alive}
        for agent in self.agents:
            # Spawn through a door only once the doorway is clear.
            if (not agent.alive and not agent.done and frame >= agent.spawn_frame
                    and self._free(agent, agent.heading, agent.pos, footprints)):
                    agent.alive = True
                    footprints[agent.index] = self._rect(agent)
        envelopes = {a.index: self._envelope(a) for a in self.agents if a.alive}
        for agent in self.agents:
            if not agent.alive:
                continue
            spec = agent.spec
            _ensure_legs(agent)
            s, length, agent.seg = self._progress(agent)
            remaining = length - s
            # End of leg: despawn, pause, or start the next one.
            if remaining < 0.25:
                leg = agent.leg
                if leg.exit:
                    agent.alive, agent.done = False, True
                    footprints.pop(agent.index, None)
                    continue
                if leg.pause > 0 and not agent.pausing:
                    agent.pausing, agent.pause_left = True, leg.pause
                if agent.pausing and agent.speed < 0.05:
                    agent.pause_left -= dt
                if not agent.pausing or agent.pause_left <= 0:
                    agent.pausing = False
                    agent.legs.pop(0)
                    _ensure_legs(agent)
                    s, length, agent.seg = self._progress(agent)
                    remaining = length - s
            lookahead = float(np.clip(0.5 + 0.3 * agent.speed, 0.6, 1.2))
            target = self._point_at(agent.leg.path, s + lookahead)
            if agent.aside_time > 0:  # step to the right of the path to get around a stuck agent
                h = np.array([math.cos(agent.heading), math.sin(agent.heading)])
                shifted = target + agent.aside * np.array([h[1], -h[0]])
                if agent.graph.is_clear(shifted[None], slack=0.3)[0]:
                    target = shifted
                agent.aside_time -= dt
            delta = target - agent.pos
            err = float(wrap_angle(math.atan2(delta[1], delta[0]) - agent.heading))
            omega = float(np.clip(3.0 * err, -spec.max_turn_rate, spec.max_turn_rate))
            v_des = agent.instance.cruise_speed * max(math.cos(err), 0.0) ** 2
            v_des = min(v_des, self._corner_limit(agent, s))
            if agent.pausing or (not agent.leg.exit and agent.leg.pause > 0):
                v_des = min(v_des, math.sqrt(2 * spec.max_accel * max(remaining - 0.1, 0.0)))
            if self._blocked(agent, envelopes, footprints) is not None:
                v_des = 0.0
                agent.blocked_time += dt
                # Stuck for a while (a crossing or head-on standoff): step aside, later give up the leg.
                if agent.blocked_time > 1.0 + 0.3 * agent.index and agent.aside_time <= 0:
                    agent.aside, agent.aside_time = 0.9 if agent.index % 2 else -0.9, 3.0
                if agent.blocked_time > 5.0 + 0.3 * agent.index:
                    _replan(agent, self.layout)
                    agent.blocked_time = 0.0
            else:
                agent.blocked_time = 0.0
            dv = float(np.clip(v_des - agent.speed, -2 * spec.max_accel * dt, spec.max_accel * dt))
            speed = max(0.0, agent.speed + dv)
            heading = float(wrap_angle(agent.heading + omega * dt))
            pos = agent.pos + speed * dt * np.array([math.cos(heading), math.sin(heading)])
            if not self._free(agent, heading, pos, footprints):
                # Turning would swing the body into someone: keep the heading this step.
                heading = agent.heading
                pos = agent.pos + speed * dt * np.array([math.cos(heading), math.sin(heading)])
                if not self._free(agent, heading, pos, footprints):
                    # Straight on would touch someone too: brake as hard as the class can.
                    speed = max(0.0, agent.speed - 2 * spec.max_accel * dt)
                    pos = agent.pos + speed * dt * np.array([math.cos(heading), math.sin(heading)])
                    if not self._bodies_apart(agent, heading, pos):
                        # The bodies would touch: an emergency stop (beyond the class's deceleration) beats driving
                        # into someone. Counted in ``emergency_stops``: 2 in the 17 default scenes.
                        speed, pos = 0.0, agent.pos.copy()
                        self.emergency_stops += 1
            agent.speed, agent.heading, agent.pos = speed, heading, pos
            footprints[agent.index] = self._rect(agent)
            if spec.stride > 0:
                agent.gait = (agent.gait + 2 * math.pi * agent.speed * dt / spec.stride) % (2 * math.pi)
