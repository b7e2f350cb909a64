"""The NumPy host bank reproduces the PyTorch instance bank's temporal logic exactly (ids, caching, projection)."""

from __future__ import annotations

import numpy as np
import torch

from visionops.export.host_bank import HostInstanceBank
from visionops.export.host_decode import decode_tracked
from visionops.models.sparse4d.instance_bank import InstanceBank
from visionops.models.sparse4d.postprocess import SparseBox3DDecoder

N, T, C, K = 24, 10, 8, 3


def _frames(seed: int = 0):
    """(timestamp, scene, logits, features, anchors) with a time gap, a scene change and exact logit ties."""
    rng = np.random.default_rng(seed)
    schedule = [(0.0, "a"), (0.1, "a"), (0.2, "a"), (3.0, "a"), (3.1, "a"), (0.0, "b"), (0.1, "b"), (0.2, "b")]
    for timestamp, scene in schedule:
        logits = rng.normal(-1.0, 2.0, (1, N, K)).astype(np.float32)
        logits[0, -6:] = logits[0, -6]  # queries that see nothing share one output
        yield timestamp, scene, logits, rng.normal(size=(1, N, C)).astype(np.float32), \
            rng.normal(size=(1, N, 11)).astype(np.float32)


def test_host_bank_matches_instance_bank_ids_cache_and_projection():
    torch_bank = InstanceBank(N, C, None, T, confidence_decay=0.8, max_time_interval=2.0)
    host = HostInstanceBank(N, T, C, confidence_decay=0.8, max_time_interval=2.0, id_threshold=0.3)
    for timestamp, scene, logits, feature, anchor in _frames():
        frame = torch_bank.get(1, torch.tensor([timestamp], dtype=torch.float64), [scene])
        inputs = host.inputs([timestamp], [scene])
        if frame.temp_anchor is None:
            assert inputs.prev_exists[0] == 0 and not inputs.input_cached_anchor.any()
        else:
            assert inputs.prev_exists[0] == 1
            np.testing.assert_array_equal(inputs.interval_mask.reshape(-1), frame.mask.numpy())
            np.testing.assert_allclose(inputs.input_cached_anchor, frame.temp_anchor.numpy(), atol=1e-6)
            np.testing.assert_array_equal(inputs.input_cached_feature, frame.temp_feature.numpy())
        expected = torch_bank.cache(torch.from_numpy(feature), torch.from_numpy(anchor), torch.from_numpy(logits),
                                    track=True, id_threshold=0.3)
        got = host.cache(logits, feature, anchor)
        np.testing.assert_array_equal(got, expected.numpy())
    assert host.next_id == torch_bank.next_id > N  # ids kept growing across the gap and the scene change


def test_host_decode_matches_torch_decoder():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(N, K)).astype(np.float32)
    logits[-5:] = logits[-5]
    quality = rng.normal(size=(N, 2)).astype(np.float32)
    states = rng.normal(size=(N, 11)).astype(np.float32)
    ids = np.arange(N, dtype=np.int64)
    ids[::4] = -1
    decoder = SparseBox3DDecoder(num_output=15, score_threshold=0.3)
    (expected,) = decoder.decode(torch.from_numpy(logits)[None], torch.from_numpy(states)[None],
                                 torch.from_numpy(quality)[None], torch.from_numpy(ids)[None])
    got = decode_tracked(logits, states, quality, ids, None, num_output=15, score_threshold=0.3)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value.numpy(), atol=1e-6, err_msg=key)
    assert len(got["instance_ids"]) > 0
