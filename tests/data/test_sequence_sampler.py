"""SequenceBatchSampler: per-slot consecutive frames, new sequences with new seeds, DDP, evaluation order."""

from __future__ import annotations

import pytest

from visionops.data.sequence_sampler import SequenceBatchSampler

# Five sequences of different lengths over dataset indices 0..99.
LENGTHS = [30, 12, 25, 8, 25]
SEQUENCES = []
_start = 0
for _n in LENGTHS:
    SEQUENCES.append(list(range(_start, _start + _n)))
    _start += _n
SEQUENCE_OF = {i: s for s, seq in enumerate(SEQUENCES) for i in seq}


def _runs(batches, slot):
    """Split slot ``slot``'s (index, seed) stream into runs of one seed."""
    runs: list[list[tuple[int, int]]] = []
    for batch in batches:
        item = batch[slot]
        if not runs or runs[-1][-1][1] != item[1]:
            runs.append([])
        runs[-1].append(item)
    return runs


def test_each_slot_plays_consecutive_frames_of_one_sequence_then_a_new_one_with_a_new_seed():
    sampler = SequenceBatchSampler(SEQUENCES, 3, max_sequence_length=6, steps_per_epoch=60, seed=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 60 and all(len(b) == 3 for b in batches)
    starts = set()
    for slot in range(3):
        runs = _runs(batches, slot)
        assert len(runs) >= 10
        for run, following in zip(runs, runs[1:], strict=False):
            indices = [i for i, _ in run]
            assert len({SEQUENCE_OF[i] for i in indices}) == 1
            assert indices == list(range(indices[0], indices[0] + len(indices)))
            sequence = SEQUENCES[SEQUENCE_OF[indices[0]]]
            # A run stops after max_sequence_length frames or at the sequence end.
            assert len(run) == 6 or indices[-1] == sequence[-1]
            assert following[0][1] != run[0][1]
            starts.add(indices[0] - sequence[0])
    assert len(starts) > 3  # random start points, not always the first frame


def test_frame_step_and_skip_probability():
    sampler = SequenceBatchSampler(SEQUENCES, 2, frame_step=2, skip_prob=0.5, max_sequence_length=None,
                                   steps_per_epoch=80, seed=1)
    deltas = []
    for slot in range(2):
        for run in _runs(list(sampler), slot):
            deltas += [b[0] - a[0] for a, b in zip(run, run[1:], strict=False)]
    assert set(deltas) == {2, 3}
    assert 0.3 < deltas.count(3) / len(deltas) < 0.7


def test_runs_to_the_sequence_end_without_a_length_limit():
    sampler = SequenceBatchSampler(SEQUENCES, 1, max_sequence_length=None, steps_per_epoch=100, seed=2)
    runs = _runs(list(sampler), 0)
    for run in runs[:-1]:  # the last run is cut by the epoch end
        assert run[-1][0] == SEQUENCES[SEQUENCE_OF[run[0][0]]][-1]


def test_deterministic_per_seed_and_epoch_and_default_length():
    a = SequenceBatchSampler(SEQUENCES, 2, seed=7)
    b = SequenceBatchSampler(SEQUENCES, 2, seed=7)
    assert len(a) == 100 // 2
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert len(SequenceBatchSampler(SEQUENCES, 2, frame_step=2, num_replicas=2)) == 100 // 8


def test_ddp_ranks_follow_different_sequences():
    ranks = [SequenceBatchSampler(SEQUENCES, 2, max_sequence_length=4, steps_per_epoch=30, seed=3, num_replicas=2,
                                  rank=r) for r in range(2)]
    streams = [list(s) for s in ranks]
    assert len(streams[0]) == len(streams[1]) == 30  # DDP needs the same number of steps on every rank
    for batch0, batch1 in zip(*streams, strict=True):
        playing = [SEQUENCE_OF[i] for i, _ in batch0 + batch1]
        assert len(set(playing)) == 4  # 4 global slots, 5 sequences: never two slots on one sequence
    single = list(SequenceBatchSampler(SEQUENCES, 4, max_sequence_length=4, steps_per_epoch=30, seed=3))
    assert [b0 + b1 for b0, b1 in zip(*streams, strict=True)] == single


def test_sequential_plays_every_sequence_in_order_once():
    sampler = SequenceBatchSampler(SEQUENCES, 1, sequential=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 100 and all(len(b) == 1 for b in batches)
    assert [b[0][0] for b in batches] == list(range(100))
    assert [b[0][1] for b in batches] == [s for s, n in enumerate(LENGTHS) for _ in range(n)]
    parts = [list(SequenceBatchSampler(SEQUENCES, 1, sequential=True, num_replicas=2, rank=r)) for r in range(2)]
    indices = [[b[0][0] for b in part] for part in parts]
    assert sorted(indices[0] + indices[1]) == list(range(100))
    assert abs(len(indices[0]) - len(indices[1])) <= max(LENGTHS)
    # Whole sequences per rank, each from its start and in order.
    assert {SEQUENCE_OF[i] for i in indices[0]}.isdisjoint({SEQUENCE_OF[i] for i in indices[1]})
    for part in indices:
        assert part == sorted(part)


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=2, sequential=True), "batch_size 1"),
    (dict(batch_size=0), "batch_size and frame_step"),
    (dict(batch_size=1, skip_prob=1.0), "skip_prob"),
    (dict(batch_size=1, max_sequence_length=0), "max_sequence_length"),
    (dict(batch_size=1, rank=2, num_replicas=2), "rank 2"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceBatchSampler(SEQUENCES, **kwargs)
    with pytest.raises(ValueError, match="no non-empty sequences"):
        SequenceBatchSampler([[], []], 1)
