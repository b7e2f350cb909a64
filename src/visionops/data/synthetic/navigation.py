"""Navigation graph of a warehouse floor: where an object of a given size can drive, and shortest routes.

A grid of floor points keeping a class's clearance from racks, clutter and walls, 8-connected; routes
come from Dijkstra and are string-pulled to straight aisle runs. Distances in metres.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from visionops.data.synthetic.layout import Layout
from visionops.data.synthetic.shading import rect_distance


class NavGraph:
    """Grid of floor points at least ``clearance`` from obstacles and walls, 8-connected.

    Args:
        layout: the scene.
        clearance: metres from the centre of an object to any rack, clutter footprint or wall.
        spacing: grid step, metres.
    """

    def __init__(self, layout: Layout, clearance: float, spacing: float = 0.5) -> None:
        self.layout = layout
        self.clearance = clearance
        lo, hi = layout.floor_min + clearance, layout.floor_max - clearance
        if np.any(hi <= lo):
            raise ValueError(f"floor too small for clearance {clearance:.2f} m")
        xs = np.arange(lo[0], hi[0] + 1e-9, spacing)
        ys = np.arange(lo[1], hi[1] + 1e-9, spacing)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        points = np.stack([gx.ravel(), gy.ravel()], axis=1)
        free = self.is_clear(points)
        index = -np.ones(len(points), dtype=np.int64)
        index[free] = np.arange(int(free.sum()))
        self.nodes = points[free]
        grid = index.reshape(len(xs), len(ys))
        gi, gj = np.meshgrid(np.arange(len(xs)), np.arange(len(ys)), indexing="ij")
        rows, cols, weights = [], [], []
        for di, dj in ((1, 0), (0, 1), (1, 1), (1, -1)):
            i2, j2 = gi + di, gj + dj
            inside = (i2 < len(xs)) & (j2 >= 0) & (j2 < len(ys))
            a = grid[gi[inside], gj[inside]]
            b = grid[i2[inside], j2[inside]]
            ok = (a >= 0) & (b >= 0)
            a, b = a[ok], b[ok]
            keep = self.is_clear((self.nodes[a] + self.nodes[b]) / 2)
            a, b = a[keep], b[keep]
            w = np.linalg.norm(self.nodes[a] - self.nodes[b], axis=1)
            rows += [a, b]
            cols += [b, a]
            weights += [w, w]
        n = len(self.nodes)
        self.graph = csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                shape=(n, n))
        _, self.component = connected_components(self.graph, directed=False)

    def is_clear(self, points: np.ndarray, slack: float = 0.0) -> np.ndarray:
        """(N,) bool: points (N, 2) inside the floor and at least ``clearance - slack`` from obstacles."""
        c = self.clearance - slack
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        ok = self.layout.inside_floor(pts, margin=c)
        if len(self.layout.obstacles):
            ok &= rect_distance(pts[:, 0], pts[:, 1], self.layout.obstacles) >= c
        return ok

    def segment_clear(self, a: np.ndarray, b: np.ndarray, slack: float = 0.05) -> bool:
        """Is the straight segment a-b clear (sampled every 0.15 m)?"""
        n = max(2, int(np.ceil(np.linalg.norm(b - a) / 0.15)) + 1)
        s = np.linspace(0.0, 1.0, n)[:, None]
        return bool(np.all(self.is_clear(a + s * (b - a), slack)))

    def nearest_node(self, point: np.ndarray, component: int | None = None) -> int:
        """Index of the closest node reachable from ``point`` in a straight clear line."""
        d = np.linalg.norm(self.nodes - point, axis=1)
        if component is not None:
            d = np.where(self.component == component, d, np.inf)
        for i in np.argsort(d)[:40]:
            if np.isfinite(d[i]) and self.segment_clear(point, self.nodes[i], slack=0.3):
                return int(i)
        return int(np.argmin(d))

    def distances(self, source: int) -> tuple[np.ndarray, np.ndarray]:
        """Shortest-path distances (M,) and predecessors (M,) from node ``source``."""
        dist, pred = dijkstra(self.graph, directed=False, indices=source, return_predecessors=True)
        return dist, pred

    def route(self, start: np.ndarray, goal_node: int) -> np.ndarray:
        """(K, 2) polyline from point ``start`` to node ``goal_node``: shortest path, string-pulled."""
        src = self.nearest_node(start)
        _, pred = self.distances(src)
        path = [goal_node]
        while path[-1] != src and pred[path[-1]] >= 0:
            path.append(int(pred[path[-1]]))
        points = np.concatenate([start[None], self.nodes[path[::-1]]])
        return self.string_pull(points)

    def string_pull(self, points: np.ndarray) -> np.ndarray:
        """Drop intermediate points while the straight line stays clear (any-angle path)."""
        out = [points[0]]
        i = 0
        while i < len(points) - 1:
            j = len(points) - 1
            while j > i + 1 and not self.segment_clear(points[i], points[j]):
                j -= 1
            out.append(points[j])
            i = j
        pts = np.array(out)
        # Merge points closer than 5 cm (start on top of its nearest node).
        keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 0.05])
        keep[-1] = True
        return pts[keep]
