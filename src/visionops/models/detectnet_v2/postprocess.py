"""DetectNet_v2 post-processing: coverage/bbox grids -> detections (TAO clustering semantics).

Spec: ``specs/detectnet_v2_and_pruning.md`` sections 1 ("Decoding") and 4. Inputs are the sigmoid coverage and
the *decoded* absolute boxes (:func:`visionops.models.detectnet_v2.box_coding.decode_ltrb`). Per class, the grid
cells whose coverage exceeds ``coverage_threshold`` each propose one box; the proposals are merged either by

- **DBSCAN** (TAO train/evaluate default): distance ``1 - IoU`` between proposals, each proposal weighted by its
  coverage; one detection per cluster with the coverage-weighted mean box and confidence = summed coverage
  (can exceed 1), or by
- **NMS** (DeepStream ``cluster-mode=2``): greedy NMS by cell coverage, confidence = that cell's coverage.

Detections are returned as numpy rows, one array ``(K, 7)`` float64 per image, columns :data:`DETECTION_COLUMNS`:
``x1, y1, x2, y2`` (network-input pixels), ``confidence``, ``class_id`` (channel index), ``num_cells`` (grid cells
merged into the detection; 1 for NMS). The first six columns are exactly the ``[x1, y1, x2, y2, score, class]``
rows :func:`visionops.evaluation.kpi.evaluate_detections` takes.

Deliberate differences from the TAO source (all documented at the function concerned):

- TAO's ``build_clustering_config`` swaps the two confidence thresholds, so TAO train/evaluate filter DBSCAN
  clusters with ``nms_confidence_threshold``. Here each path uses its own threshold.
- TAO's NMS path receives ``minimum_bounding_box_height`` but never applies it; here it filters both paths.
- At most ``max_cells`` proposals per (image, class) are clustered (the strongest; default 4000, never binding
  on a 34x60 grid); TAO clusters all of them.
- Output order is fully deterministic (confidence desc, then coordinates, then class), and NMS ties are broken
  by grid position (row-major), where TAO's selection sort leaves tie order to its swaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

DETECTION_COLUMNS: tuple[str, ...] = ("x1", "y1", "x2", "y2", "confidence", "class_id", "num_cells")
"""Columns of a detection array ``(K, 7)``."""
COL_CONFIDENCE = 4
COL_CLASS = 5
COL_NUM_CELLS = 6

DEFAULT_MAX_CELLS = 4000
"""Cap on proposals per (image, class) before clustering: all-pairs IoU is O(n^2) in time (and the neighbour
graph can approach n^2 entries when boxes pile up). A 960x544 input at stride 16 has only 34 * 60 = 2040 cells
per class, so the cap never binds at that resolution; worst case there (an untrained model, every cell above
threshold) is ~0.1 s per class on one CPU core."""

# TAO adds this to the IoU union of the DBSCAN distance so degenerate (zero-area) boxes give IoU 0, not NaN.
# Kept identical so proposals exactly at the eps boundary cluster the same way as in TAO.
_DBSCAN_IOU_EPS = 1e-5
_GRAPH_BLOCK_ROWS = 256  # IoU rows per block when building the DBSCAN neighbour graph (256 x 4000 x 8 B = 8 MB)

Algorithm = Literal["dbscan", "nms"]
ALGORITHMS: tuple[str, ...] = ("dbscan", "nms")


@dataclass(frozen=True)
class ClusteringConfig:
    """Per-class clustering parameters (TAO ``clustering_config``; defaults: TAO default spec / our choice).

    Attributes:
        coverage_threshold: a cell proposes a box only if its coverage is strictly greater than this.
        minimum_bounding_box_height: output boxes with height <= this (pixels) are dropped (both algorithms).
        algorithm: ``"dbscan"`` or ``"nms"``.
        dbscan_eps: DBSCAN neighbourhood radius in ``1 - IoU`` units (0.13 = proposals with IoU >= 0.87 are
            neighbours).
        dbscan_min_samples: minimum *summed coverage* of a core point's neighbourhood. As in TAO it is passed to
            sklearn as ``max(int(dbscan_min_samples), 1)`` -- truncated to an integer >= 1 (see
            :attr:`dbscan_min_weight`).
        dbscan_confidence_threshold: clusters with summed coverage below this are dropped.
        nms_iou_threshold: NMS suppresses a proposal whose IoU (+1 pixel convention) with a kept one is
            strictly greater than this.
        nms_confidence_threshold: NMS keeps a proposal only if its coverage is strictly greater than this.
    """

    coverage_threshold: float = 0.005
    minimum_bounding_box_height: float = 4.0
    algorithm: Algorithm = "dbscan"
    dbscan_eps: float = 0.13
    dbscan_min_samples: float = 1.0
    dbscan_confidence_threshold: float = 0.1
    nms_iou_threshold: float = 0.5
    nms_confidence_threshold: float = 0.2

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if not 0.0 <= self.coverage_threshold < 1.0:
            raise ValueError(f"coverage_threshold must be in [0, 1), got {self.coverage_threshold}")
        if not self.dbscan_eps > 0.0:
            raise ValueError(f"dbscan_eps must be > 0, got {self.dbscan_eps}")
        if not self.dbscan_min_samples >= 0.0:
            raise ValueError(f"dbscan_min_samples must be >= 0, got {self.dbscan_min_samples}")
        if not 0.0 <= self.nms_iou_threshold <= 1.0:
            raise ValueError(f"nms_iou_threshold must be in [0, 1], got {self.nms_iou_threshold}")

    @property
    def dbscan_min_weight(self) -> int:
        """The ``min_samples`` actually handed to sklearn: ``max(int(dbscan_min_samples), 1)``, as TAO does.

        sklearn's DBSCAN with ``sample_weight`` counts a neighbourhood by the *sum of the weights* of its members
        (the point itself included), and a point is core iff that sum >= ``min_samples``. With weight = coverage,
        ``min_samples = 1`` means "a cluster needs a core cell whose eps-neighbourhood holds total coverage >= 1",
        not "one cell": an isolated cell (coverage < 1) is noise however confident. Fractional values are
        truncated like TAO's ``int()`` (0.5 -> 1, 2.7 -> 2).
        """
        return max(int(self.dbscan_min_samples), 1)


ConfigArg = ClusteringConfig | Sequence[ClusteringConfig]


def _per_class_configs(configs: ConfigArg, num_classes: int) -> list[ClusteringConfig]:
    """One config per class: a single config is shared; a sequence must have exactly ``num_classes`` entries."""
    if isinstance(configs, ClusteringConfig):
        return [configs] * num_classes
    configs = list(configs)
    if len(configs) != num_classes:
        raise ValueError(f"got {len(configs)} clustering configs for {num_classes} classes")
    for cfg in configs:
        if not isinstance(cfg, ClusteringConfig):
            raise TypeError(f"expected ClusteringConfig, got {type(cfg).__name__}")
    return configs


def empty_detections() -> np.ndarray:
    """An empty detection array ``(0, 7)`` float64."""
    return np.zeros((0, len(DETECTION_COLUMNS)), dtype=np.float64)


def _to_numpy(x: Any) -> np.ndarray:
    """numpy or torch (any device, with or without grad) -> float64 numpy array."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def iou_rows(boxes: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Continuous IoU of ``boxes[start:stop]`` against all ``boxes`` (n, 4) x1y1x2y2 px -> (stop - start, n).

    Union regularised by +1e-5 px^2 as in TAO's DBSCAN distance (zero-area boxes give 0, not NaN). Computed with
    in-place operations; ``iou_rows(boxes)`` is the full (n, n) matrix.
    """
    stop = len(boxes) if stop is None else stop
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    rows = slice(start, stop)
    inter = np.minimum(x2[rows, None], x2[None, :])
    inter -= np.maximum(x1[rows, None], x1[None, :])
    np.maximum(inter, 0.0, out=inter)
    ih = np.minimum(y2[rows, None], y2[None, :])
    ih -= np.maximum(y1[rows, None], y1[None, :])
    np.maximum(ih, 0.0, out=ih)
    inter *= ih
    del ih
    area = (x2 - x1) * (y2 - y1)
    union = area[rows, None] + area[None, :]
    union -= inter
    union += _DBSCAN_IOU_EPS
    inter /= union
    return inter


def dbscan_neighbour_graph(boxes: np.ndarray, eps: float, block_rows: int = _GRAPH_BLOCK_ROWS) -> Any:
    """Sparse ``1 - IoU`` distance graph keeping only pairs within ``eps`` (the DBSCAN neighbourhoods).

    sklearn's DBSCAN with ``metric="precomputed"`` treats the stored entries of a sparse matrix as the only
    candidate neighbours, so this gives exactly the labels of the dense ``1 - IoU`` matrix while computing the
    IoU in row blocks (memory O(block_rows * n + pairs), not O(n^2)) and sparing sklearn the dense scan. The
    diagonal is stored as 0: a proposal is always its own neighbour (TAO's self-distance is ~1e-5/area, the same
    for any box of >= 1 px^2; only degenerate zero-area boxes differ, which TAO would leave out of their own
    neighbourhood).

    Args:
        boxes: (n, 4) x1y1x2y2 px.
        eps: DBSCAN radius in ``1 - IoU`` units.
        block_rows: rows of the IoU matrix computed at once.

    Returns:
        ``scipy.sparse.csr_matrix`` (n, n) float64 of distances <= eps (explicit zeros on the diagonal).
    """
    from scipy import sparse

    n = len(boxes)
    rows, cols, vals = [], [], []
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        dist = iou_rows(boxes, start, stop)
        np.subtract(1.0, dist, out=dist)
        dist[np.arange(stop - start), np.arange(start, stop)] = 0.0
        r, c = np.nonzero(dist <= eps)
        rows.append(r + start)
        cols.append(c)
        vals.append(dist[r, c])
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float64
    )


def _iou_one_to_many_plus1(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of ``box`` (4,) with ``boxes`` (m, 4) in the inclusive +1 pixel convention (TAO/DeepStream NMS).

    Widths and heights are ``x2 - x1 + 1`` (a box from pixel 10 to pixel 19 is 10 px wide); coordinates are not
    rounded.
    """
    iw = np.maximum(0.0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + 1.0)
    ih = np.maximum(0.0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + 1.0)
    inter = iw * ih
    area_a = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
    area_b = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    return inter / (area_a + area_b - inter)


def _cluster_dbscan(boxes: np.ndarray, cov: np.ndarray, cfg: ClusteringConfig) -> np.ndarray:
    """DBSCAN over proposals ``boxes`` (n, 4) weighted by ``cov`` (n,) -> rows (k, 7) with class_id 0."""
    from sklearn.cluster import DBSCAN  # heavy import, only needed here

    graph = dbscan_neighbour_graph(boxes, cfg.dbscan_eps)
    db = DBSCAN(eps=cfg.dbscan_eps, min_samples=cfg.dbscan_min_weight, metric="precomputed")
    labels = db.fit_predict(graph, sample_weight=cov)
    member = labels >= 0  # label -1 = noise, dropped
    if not member.any():
        return empty_detections()
    lab = labels[member]
    w = cov[member]
    n_clusters = int(lab.max()) + 1
    cov_sum = np.bincount(lab, weights=w, minlength=n_clusters)
    num_cells = np.bincount(lab, minlength=n_clusters).astype(np.float64)
    mean_box = (
        np.stack([np.bincount(lab, weights=w * boxes[member, k], minlength=n_clusters) for k in range(4)], axis=1)
        / cov_sum[:, None]
    )
    keep = (mean_box[:, 3] - mean_box[:, 1] > cfg.minimum_bounding_box_height) & (
        cov_sum >= cfg.dbscan_confidence_threshold
    )
    out = np.zeros((int(keep.sum()), len(DETECTION_COLUMNS)), dtype=np.float64)
    out[:, :4] = mean_box[keep]
    out[:, COL_CONFIDENCE] = cov_sum[keep]
    out[:, COL_NUM_CELLS] = num_cells[keep]
    return out


def _cluster_nms(boxes: np.ndarray, cov: np.ndarray, cfg: ClusteringConfig) -> np.ndarray:
    """Greedy NMS over proposals ``boxes`` (n, 4) ranked by ``cov`` (n,) -> rows (k, 7) with class_id 0.

    Suppression happens before the confidence/height filters, as in TAO: a proposal below
    ``nms_confidence_threshold`` can only suppress proposals with even lower coverage, which would be dropped
    anyway, so the order of the two steps does not change the kept set.
    """
    # Stable sort: equal coverages keep their row-major grid order -> deterministic tie-breaking.
    alive = np.argsort(-cov, kind="stable")
    kept: list[int] = []
    while alive.size:
        best = int(alive[0])
        kept.append(best)
        rest = alive[1:]
        if rest.size == 0:
            break
        alive = rest[_iou_one_to_many_plus1(boxes[best], boxes[rest]) <= cfg.nms_iou_threshold]
    idx = np.asarray(kept, dtype=np.intp)
    sel = boxes[idx]
    keep = (cov[idx] > cfg.nms_confidence_threshold) & (sel[:, 3] - sel[:, 1] > cfg.minimum_bounding_box_height)
    out = np.zeros((int(keep.sum()), len(DETECTION_COLUMNS)), dtype=np.float64)
    out[:, :4] = sel[keep]
    out[:, COL_CONFIDENCE] = cov[idx][keep]
    out[:, COL_NUM_CELLS] = 1.0
    return out


def sort_detections(dets: np.ndarray) -> np.ndarray:
    """Deterministic order of a detection array (K, 7): confidence desc, then x1, y1, x2, y2, class_id asc."""
    if len(dets) < 2:
        return dets
    # np.lexsort: the last key is the primary one.
    order = np.lexsort(
        (dets[:, COL_NUM_CELLS], dets[:, COL_CLASS], dets[:, 3], dets[:, 2], dets[:, 1], dets[:, 0], -dets[:, 4])
    )
    return dets[order]


def cluster_image(
    cov: Any,
    boxes: Any,
    configs: ConfigArg = ClusteringConfig(),  # noqa: B008 - frozen dataclass, safe as a default
    *,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> np.ndarray:
    """Cluster one image's grids into detections.

    Per class ``c`` (with ``cfg = configs[c]``):

    1. Proposals: cells with ``cov[c] > cfg.coverage_threshold``, in row-major grid order. If there are more than
       ``max_cells`` of them, only the ``max_cells`` with the highest coverage are kept (ties: grid order), because
       the DBSCAN distance matrix is O(n^2); this also bounds NMS. Not in TAO, which clusters every proposal.
    2. ``"dbscan"``: sklearn ``DBSCAN(eps, min_samples=cfg.dbscan_min_weight, metric="precomputed")`` on
       ``1 - IoU`` (continuous IoU, no +1; passed as a sparse graph of the pairs within eps, see
       :func:`dbscan_neighbour_graph`) with ``sample_weight = cov``: a proposal is core iff the summed coverage
       of its eps-neighbourhood (itself included) is >= ``max(int(dbscan_min_samples), 1)``. Noise is dropped.
       Each cluster gives box = coverage-weighted mean of its members' boxes, confidence = sum of member
       coverages, num_cells = member count. Clusters with height <= ``minimum_bounding_box_height`` or confidence
       < ``dbscan_confidence_threshold`` are dropped.
       ``"nms"``: greedy NMS by coverage, suppressing IoU (+1 pixel convention) > ``nms_iou_threshold``; a kept
       proposal becomes a detection with confidence = its coverage if that is > ``nms_confidence_threshold`` and
       its height > ``minimum_bounding_box_height`` (filters applied after suppression, like DeepStream's
       post-cluster size filter; TAO's NMS ignores the height); num_cells = 1.

    Args:
        cov: ``(C, H, W)`` coverage probabilities (after the sigmoid), numpy or torch.
        boxes: ``(C, 4, H, W)`` absolute ``x1, y1, x2, y2`` boxes in network-input pixels, already decoded
            (:func:`visionops.models.detectnet_v2.box_coding.decode_ltrb`); ``(4*C, H, W)`` in the head's
            class-major layout is accepted too.
        configs: one :class:`ClusteringConfig` shared by all classes, or one per class (length ``C``).
        max_cells: cap on proposals per class (see step 1).

    Returns:
        ``(K, 7)`` float64 detections, columns :data:`DETECTION_COLUMNS`, sorted by :func:`sort_detections`.
    """
    cov = _to_numpy(cov)
    boxes = _to_numpy(boxes)
    if cov.ndim != 3:
        raise ValueError(f"cov must be (C, H, W), got shape {cov.shape}")
    num_classes, h, w = cov.shape
    if boxes.shape == (4 * num_classes, h, w):
        boxes = boxes.reshape(num_classes, 4, h, w)
    if boxes.shape != (num_classes, 4, h, w):
        raise ValueError(f"boxes must be (C, 4, H, W) = {(num_classes, 4, h, w)}, got shape {boxes.shape}")
    if max_cells < 1:
        raise ValueError(f"max_cells must be >= 1, got {max_cells}")
    per_class = _per_class_configs(configs, num_classes)

    parts: list[np.ndarray] = []
    for c, cfg in enumerate(per_class):
        cov_c = cov[c].reshape(-1)
        keep = np.flatnonzero(cov_c > cfg.coverage_threshold)
        if keep.size == 0:
            continue
        if keep.size > max_cells:
            top = np.argsort(-cov_c[keep], kind="stable")[:max_cells]
            keep = np.sort(keep[top])  # back to grid order: DBSCAN's labelling depends on input order
        props = boxes[c].reshape(4, -1)[:, keep].T  # (n, 4)
        weights = cov_c[keep]
        dets = _cluster_dbscan(props, weights, cfg) if cfg.algorithm == "dbscan" else _cluster_nms(props, weights, cfg)
        dets[:, COL_CLASS] = c
        parts.append(dets)
    if not parts:
        return empty_detections()
    return sort_detections(np.concatenate(parts, axis=0))


def postprocess_batch(
    cov: Any,
    boxes: Any,
    configs: ConfigArg = ClusteringConfig(),  # noqa: B008 - frozen dataclass, safe as a default
    *,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> list[np.ndarray]:
    """:func:`cluster_image` over a batch.

    Args:
        cov: ``(N, C, H, W)`` coverage probabilities, numpy or torch (any device; copied to CPU float64).
        boxes: ``(N, C, 4, H, W)`` or ``(N, 4*C, H, W)`` decoded absolute boxes in pixels (the output of
            :func:`visionops.models.detectnet_v2.box_coding.decode_ltrb`), numpy or torch.
        configs, max_cells: as in :func:`cluster_image`.

    Returns:
        ``N`` arrays ``(K_i, 7)``, columns :data:`DETECTION_COLUMNS`.
    """
    cov = _to_numpy(cov)
    boxes = _to_numpy(boxes)
    if cov.ndim != 4:
        raise ValueError(f"cov must be (N, C, H, W), got shape {cov.shape}")
    if boxes.ndim == 4:
        n, c4, h, w = boxes.shape
        if c4 % 4:
            raise ValueError(f"boxes channels must be a multiple of 4, got shape {boxes.shape}")
        boxes = boxes.reshape(n, c4 // 4, 4, h, w)
    if boxes.ndim != 5 or boxes.shape[0] != cov.shape[0]:
        raise ValueError(f"boxes must be (N, C, 4, H, W) matching cov {cov.shape}, got shape {boxes.shape}")
    return [cluster_image(cov[i], boxes[i], configs, max_cells=max_cells) for i in range(cov.shape[0])]
