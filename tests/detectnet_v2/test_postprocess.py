"""DetectNet_v2 post-processing on hand-built coverage/box grids: DBSCAN and NMS paths, filters, caps, order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visionops.models.detectnet_v2.postprocess import (
    DETECTION_COLUMNS,
    ClusteringConfig,
    cluster_image,
    dbscan_neighbour_graph,
    iou_rows,
    postprocess_batch,
    sort_detections,
)

H, W = 8, 12  # grid cells

# Six nearly identical proposals of one object (jitter <= 1 px on a 100x80 box -> pairwise IoU > 0.95,
# well inside eps 0.13) and their coverages (sum 2.3).
OBJ_BOXES = np.array(
    [
        [100.0, 100.0, 200.0, 180.0],
        [101.0, 100.0, 200.0, 181.0],
        [99.0, 101.0, 199.0, 180.0],
        [100.0, 99.0, 201.0, 180.0],
        [100.5, 100.5, 200.5, 180.5],
        [99.5, 100.0, 200.0, 179.5],
    ]
)
OBJ_COVS = np.array([0.3, 0.4, 0.5, 0.6, 0.2, 0.3])
OBJ_CELLS = [(2, 3), (2, 4), (3, 3), (3, 4), (4, 3), (4, 4)]  # (row, col)


def empty_grids(num_classes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((num_classes, H, W)), np.zeros((num_classes, 4, H, W))


def put(cov, boxes, c, cells, box_list, cov_list) -> None:
    for (r, q), b, v in zip(cells, box_list, cov_list, strict=True):
        cov[c, r, q] = v
        boxes[c, :, r, q] = b


def test_columns_contract():
    assert DETECTION_COLUMNS == ("x1", "y1", "x2", "y2", "confidence", "class_id", "num_cells")


def test_dbscan_one_object_weighted_mean_and_summed_cov():
    cov, boxes = empty_grids()
    put(cov, boxes, 0, OBJ_CELLS, OBJ_BOXES, OBJ_COVS)
    dets = cluster_image(cov, boxes, ClusteringConfig())
    assert dets.shape == (1, 7)
    expected_box = (OBJ_COVS[:, None] * OBJ_BOXES).sum(axis=0) / OBJ_COVS.sum()
    np.testing.assert_allclose(dets[0, :4], expected_box, rtol=0, atol=1e-9)
    assert dets[0, 4] == pytest.approx(2.3)  # summed coverage, > 1 is expected
    assert dets[0, 5] == 0
    assert dets[0, 6] == 6


def test_dbscan_two_far_objects_two_detections_sorted_by_confidence():
    cov, boxes = empty_grids()
    put(cov, boxes, 0, OBJ_CELLS, OBJ_BOXES, OBJ_COVS)
    far = OBJ_BOXES + np.array([400.0, 0.0, 400.0, 0.0])
    cells = [(r, q + 6) for r, q in OBJ_CELLS]
    put(cov, boxes, 0, cells, far, OBJ_COVS * 2)  # sum 4.6
    dets = cluster_image(cov, boxes)
    assert dets.shape == (2, 7)
    assert dets[0, 4] == pytest.approx(4.6) and dets[1, 4] == pytest.approx(2.3)
    assert dets[0, 0] > 400 and dets[1, 0] < 300


def test_dbscan_isolated_low_coverage_cell_is_noise():
    # With sample_weight = cov a core point needs summed cov >= min_samples (1): a single cell of 0.6 is noise.
    cov, boxes = empty_grids()
    put(cov, boxes, 0, OBJ_CELLS, OBJ_BOXES, OBJ_COVS)
    put(cov, boxes, 0, [(7, 11)], [[500.0, 20.0, 560.0, 90.0]], [0.6])
    dets = cluster_image(cov, boxes, ClusteringConfig(dbscan_confidence_threshold=0.0))
    assert dets.shape == (1, 7)
    assert dets[0, 4] == pytest.approx(2.3)
    # Fractional min_samples is truncated like TAO's int(): 0.5 -> 1, so the cell is still noise.
    cfg = ClusteringConfig(dbscan_min_samples=0.5, dbscan_confidence_threshold=0.0)
    assert cfg.dbscan_min_weight == 1
    assert cluster_image(cov, boxes, cfg).shape == (1, 7)


def test_dbscan_two_weak_cells_reach_min_samples_together():
    # 0.6 + 0.6 = 1.2 >= 1 inside one eps-neighbourhood -> a cluster of two cells; either alone would be noise.
    cov, boxes = empty_grids()
    put(cov, boxes, 0, [(1, 1), (1, 2)], [[10.0, 10.0, 60.0, 70.0], [10.0, 10.0, 60.0, 70.0]], [0.6, 0.6])
    dets = cluster_image(cov, boxes)
    assert dets.shape == (1, 7)
    assert dets[0, 4] == pytest.approx(1.2) and dets[0, 6] == 2
    # min_samples 2 -> summed 1.2 < 2 -> noise.
    assert cluster_image(cov, boxes, ClusteringConfig(dbscan_min_samples=2.0)).shape == (0, 7)


def test_dbscan_border_cell_joins_cluster():
    # A weak cell (0.05) is not core but lies within eps of core cells -> border point, part of the cluster.
    cov, boxes = empty_grids()
    put(cov, boxes, 0, OBJ_CELLS, OBJ_BOXES, OBJ_COVS)
    put(cov, boxes, 0, [(5, 5)], [[100.0, 100.0, 200.0, 180.0]], [0.05])
    dets = cluster_image(cov, boxes)
    assert dets.shape == (1, 7)
    assert dets[0, 6] == 7 and dets[0, 4] == pytest.approx(2.35)


def test_coverage_threshold_is_strict():
    cov, boxes = empty_grids()
    put(cov, boxes, 0, OBJ_CELLS, OBJ_BOXES, [0.5] * 6)
    assert cluster_image(cov, boxes, ClusteringConfig(coverage_threshold=0.5)).shape == (0, 7)
    assert cluster_image(cov, boxes, ClusteringConfig(coverage_threshold=0.49)).shape == (1, 7)


def test_height_and_confidence_filters_dbscan():
    cov, boxes = empty_grids()
    short = [[10.0, 10.0, 60.0, 14.0]] * 2  # height 4 px: <= 4 -> dropped
    put(cov, boxes, 0, [(0, 0), (0, 1)], short, [0.8, 0.8])
    assert cluster_image(cov, boxes).shape == (0, 7)
    assert cluster_image(cov, boxes, ClusteringConfig(minimum_bounding_box_height=3.9)).shape == (1, 7)
    # Confidence 1.6: kept at threshold 1.6 (drop only if < threshold), dropped at 1.7.
    cfg = ClusteringConfig(minimum_bounding_box_height=0.0, dbscan_confidence_threshold=1.6)
    assert cluster_image(cov, boxes, cfg).shape == (1, 7)
    cfg = ClusteringConfig(minimum_bounding_box_height=0.0, dbscan_confidence_threshold=1.7)
    assert cluster_image(cov, boxes, cfg).shape == (0, 7)


def test_nms_keeps_best_cell_and_suppresses_with_plus_one_iou():
    # a = [0,0,9,9] and b = [5,0,14,9]: with +1 pixels each is 10x10 = 100, intersection (9-5+1) x 10 = 50,
    # IoU = 50 / (100 + 100 - 50) = 1/3. Continuous IoU would be 36 / 126 = 0.286.
    # At nms_iou_threshold 0.3 the +1 convention suppresses b (1/3 > 0.3); continuous IoU would keep it.
    cov, boxes = empty_grids()
    a, b = [0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]
    far = [100.0, 50.0, 140.0, 90.0]
    put(cov, boxes, 0, [(0, 0), (0, 1), (5, 5), (5, 6)], [a, b, far, far], [0.9, 0.8, 0.5, 0.7])
    cfg = ClusteringConfig(algorithm="nms", nms_iou_threshold=0.3, nms_confidence_threshold=0.2)
    dets = cluster_image(cov, boxes, cfg)
    np.testing.assert_allclose(dets[:, :4], [a, far])
    np.testing.assert_allclose(dets[:, 4], [0.9, 0.7])  # the cell's own coverage, not a sum
    np.testing.assert_array_equal(dets[:, 6], [1, 1])
    # Threshold just above 1/3 -> b survives.
    cfg = ClusteringConfig(algorithm="nms", nms_iou_threshold=0.34, nms_confidence_threshold=0.2)
    assert len(cluster_image(cov, boxes, cfg)) == 3


def test_nms_confidence_and_height_filters():
    cov, boxes = empty_grids()
    put(
        cov,
        boxes,
        0,
        [(0, 0), (4, 4), (7, 7)],
        [[0.0, 0.0, 30.0, 30.0], [100.0, 100.0, 130.0, 130.0], [200.0, 0.0, 230.0, 3.0]],
        [0.2, 0.21, 0.9],
    )
    dets = cluster_image(cov, boxes, ClusteringConfig(algorithm="nms", nms_confidence_threshold=0.2))
    # 0.2 is not > 0.2; the 0.9 cell is 3 px high (<= 4) and dropped.
    np.testing.assert_allclose(dets[:, 4], [0.21])


def test_per_class_configs():
    cov, boxes = empty_grids(2)
    put(cov, boxes, 0, OBJ_CELLS, OBJ_BOXES, OBJ_COVS)
    put(cov, boxes, 1, OBJ_CELLS, OBJ_BOXES, OBJ_COVS)
    configs = [ClusteringConfig(), ClusteringConfig(algorithm="nms")]
    dets = cluster_image(cov, boxes, configs)
    assert dets.shape == (2, 7)
    by_class = {int(d[5]): d for d in dets}
    assert by_class[0][4] == pytest.approx(2.3) and by_class[0][6] == 6  # DBSCAN: summed
    assert by_class[1][4] == pytest.approx(0.6) and by_class[1][6] == 1  # NMS: best cell
    np.testing.assert_allclose(by_class[1][:4], OBJ_BOXES[3])
    # Per-class coverage threshold removes class 1 only.
    dets = cluster_image(cov, boxes, [ClusteringConfig(), ClusteringConfig(coverage_threshold=0.7)])
    np.testing.assert_array_equal(dets[:, 5], [0])
    with pytest.raises(ValueError, match="3 clustering configs for 2 classes"):
        cluster_image(cov, boxes, [ClusteringConfig()] * 3)


def test_max_cells_keeps_highest_coverage():
    cov, boxes = empty_grids()
    put(cov, boxes, 0, OBJ_CELLS, [OBJ_BOXES[0]] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    full = cluster_image(cov, boxes)
    assert full[0, 4] == pytest.approx(2.1) and full[0, 6] == 6
    capped = cluster_image(cov, boxes, max_cells=3)
    assert capped[0, 4] == pytest.approx(0.6 + 0.5 + 0.4) and capped[0, 6] == 3
    with pytest.raises(ValueError, match="max_cells"):
        cluster_image(cov, boxes, max_cells=0)


def test_dense_random_grid_is_deterministic_and_bounded():
    rng = np.random.default_rng(0)
    c, h, w = 3, 34, 60
    cov = rng.random((c, h, w)) ** 4
    x1 = rng.uniform(0, 900, (c, h, w))
    y1 = rng.uniform(0, 500, (c, h, w))
    boxes = np.stack([x1, y1, x1 + rng.uniform(5, 60, (c, h, w)), y1 + rng.uniform(5, 40, (c, h, w))], axis=1)
    configs = [ClusteringConfig(), ClusteringConfig(algorithm="nms"), ClusteringConfig(dbscan_eps=0.5)]
    a = cluster_image(cov, boxes, configs)
    b = cluster_image(cov.copy(), boxes.copy(), configs)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, sort_detections(a[::-1].copy()))
    assert (np.diff(a[:, 4]) <= 0).all()
    # The cap == zeroing every cell but each class's 50 strongest (no coverage ties in random floats).
    capped_cov = np.zeros_like(cov)
    for k in range(c):
        flat, top = cov[k].reshape(-1), np.argsort(-cov[k].reshape(-1))[:50]
        capped_cov[k].reshape(-1)[top] = flat[top]
    np.testing.assert_array_equal(
        cluster_image(cov, boxes, configs, max_cells=50), cluster_image(capped_cov, boxes, configs)
    )


@pytest.mark.parametrize("eps", [0.13, 0.5, 1.0])
def test_sparse_neighbour_graph_gives_dense_dbscan_labels(eps):
    from sklearn.cluster import DBSCAN

    rng = np.random.default_rng(3)
    n = 700  # > the 256-row block, so several blocks are stitched together
    x1 = rng.uniform(0, 200, n)
    y1 = rng.uniform(0, 120, n)
    boxes = np.stack([x1, y1, x1 + rng.uniform(20, 40, n), y1 + rng.uniform(20, 40, n)], axis=1)
    weights = rng.random(n) ** 2
    dense = 1.0 - iou_rows(boxes)
    np.fill_diagonal(dense, 0.0)
    graph = dbscan_neighbour_graph(boxes, eps)
    assert graph.shape == (n, n) and (graph.data <= eps).all()
    assert abs(graph - graph.T).max() < 1e-12  # symmetric: IoU is
    assert graph.nnz == int((dense <= eps).sum())
    db = DBSCAN(eps=eps, min_samples=1, metric="precomputed")
    np.testing.assert_array_equal(
        db.fit_predict(graph, sample_weight=weights), db.fit_predict(dense, sample_weight=weights)
    )


def test_sort_ties_by_coordinates():
    dets = np.array([[50, 0, 60, 10, 0.5, 0, 1], [10, 0, 20, 10, 0.5, 1, 1], [0, 0, 5, 5, 0.9, 0, 1]], float)
    out = sort_detections(dets)
    np.testing.assert_array_equal(out[:, 0], [0, 10, 50])


def test_empty_grid_and_batch_with_torch_and_flat_layout():
    cov, boxes = empty_grids(2)
    put(cov, boxes, 1, OBJ_CELLS, OBJ_BOXES, OBJ_COVS)
    batch_cov = np.stack([np.zeros_like(cov), cov])
    batch_boxes = np.stack([np.zeros_like(boxes), boxes])
    out = postprocess_batch(torch.from_numpy(batch_cov).float(), torch.from_numpy(batch_boxes).float())
    assert [o.shape for o in out] == [(0, 7), (1, 7)]
    assert out[1][0, 5] == 1
    # (N, 4C, H, W) head layout gives the same result.
    flat = postprocess_batch(batch_cov, batch_boxes.reshape(2, 8, H, W))
    np.testing.assert_allclose(flat[1], postprocess_batch(batch_cov, batch_boxes)[1])


def test_decode_then_cluster_end_to_end():
    # Encode one GT box into a 3x3 block of cells with the spec's target formula (section 1); decode with the
    # model's box coding + DBSCAN returns it.
    from visionops.models.detectnet_v2.box_coding import decode_ltrb

    gt = np.array([200.0, 150.0, 330.0, 260.0])
    raw = np.zeros((1, 4, 34, 60))
    cov = np.zeros((1, 1, 34, 60))
    for j in range(11, 14):
        for i in range(15, 18):
            gx, gy = i * 16 + 0.5, j * 16 + 0.5
            raw[0, :, j, i] = [(gx - gt[0]) / 35, (gy - gt[1]) / 35, (gt[2] - gx) / 35, (gt[3] - gy) / 35]
            cov[0, 0, j, i] = 0.5
    (dets,) = postprocess_batch(cov, decode_ltrb(torch.from_numpy(raw), image_size=(960, 544)))
    assert dets.shape == (1, 7)
    np.testing.assert_allclose(dets[0, :4], gt, atol=1e-9)  # float64 throughout
    assert dets[0, 4] == pytest.approx(4.5) and dets[0, 6] == 9


def test_config_validation():
    with pytest.raises(ValueError, match="algorithm"):
        ClusteringConfig(algorithm="hybrid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dbscan_eps"):
        ClusteringConfig(dbscan_eps=0.0)
    cov, boxes = empty_grids()
    with pytest.raises(ValueError, match="boxes must be"):
        cluster_image(cov, boxes[:, :3])
