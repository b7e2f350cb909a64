"""Batch sampler for Sparse4D's temporal training: each batch slot plays its own sequence frame by frame.

Training (``sequential=False``): slot ``b`` of consecutive batches holds consecutive frames of one sequence
(``frame_step`` apart; with ``skip_prob`` one extra frame is skipped). When its sequence ends, or after
``max_sequence_length`` frames, the slot starts a new sequence drawn at random (weighted by length, so every
frame is about equally likely; random start point) with a new augmentation seed. The model resets a slot's
temporal cache when its ``scene_id`` (``"<scene>#<seed>"``) changes, so a new seed is what marks a new
sequence, also when the same scene is drawn again.

All ranks of a DDP job simulate the same ``num_replicas * batch_size`` global slots from one generator seeded
with ``(seed, epoch)`` and each takes its own ``batch_size`` slots: a new sequence is drawn among those no other
slot is playing (when there are enough), so ranks follow different sequences without communicating.

Evaluation (``sequential=True``): batch size 1, every sequence from its first frame to its last, in order, no
skipping; sequences are split over ranks by length (greedy), so ranks may run a different number of steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler

_SEED_HIGH = 2**31 - 1


@dataclass
class _Slot:
    sequence: int = -1
    position: int = 0
    played: int = 0
    seed: int = -1


class SequenceBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields lists of ``batch_size`` ``(dataset index, aug_seed)`` tuples.

    Args:
        sequences: per sequence, dataset indices in time order (:attr:`Sparse4DDataset.sequences`).
        batch_size: slots per rank (1 when ``sequential``).
        frame_step: frames advanced per step (1 = every stored frame).
        skip_prob: probability that a step advances one extra frame (train on varying dt).
        max_sequence_length: frames a slot plays before it starts a new sequence; None = to the sequence end.
        steps_per_epoch: batches per epoch; None = ``total frames // (batch_size * frame_step * num_replicas)``.
        seed: base seed; with :meth:`set_epoch` it fixes every draw.
        num_replicas, rank: DDP world size and this process's rank.
        sequential: evaluation mode (see the module docstring).
    """

    def __init__(self, sequences: Sequence[Sequence[int]], batch_size: int, *, frame_step: int = 1,
                 skip_prob: float = 0.0, max_sequence_length: int | None = 8, steps_per_epoch: int | None = None,
                 seed: int = 0, num_replicas: int = 1, rank: int = 0, sequential: bool = False) -> None:
        self.sequences = [list(map(int, s)) for s in sequences if len(s)]
        if not self.sequences:
            raise ValueError("SequenceBatchSampler: no non-empty sequences")
        if batch_size < 1 or frame_step < 1:
            raise ValueError(f"SequenceBatchSampler: batch_size and frame_step must be >= 1, got {batch_size}, "
                             f"{frame_step}")
        if sequential and batch_size != 1:
            raise ValueError("SequenceBatchSampler: sequential (evaluation) mode plays one sequence at a time; "
                             f"use batch_size 1, got {batch_size}")
        if not 0.0 <= skip_prob < 1.0:
            raise ValueError(f"SequenceBatchSampler: skip_prob must be in [0, 1), got {skip_prob}")
        if max_sequence_length is not None and max_sequence_length < 1:
            raise ValueError(f"SequenceBatchSampler: max_sequence_length must be >= 1 or None, got "
                             f"{max_sequence_length}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"SequenceBatchSampler: rank {rank} not in [0, {num_replicas})")
        self.batch_size = int(batch_size)
        self.frame_step = int(frame_step)
        self.skip_prob = float(skip_prob)
        self.max_sequence_length = max_sequence_length
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.sequential = sequential
        self.epoch = 0
        total = sum(len(s) for s in self.sequences)
        default_steps = max(1, total // (self.batch_size * self.frame_step * self.num_replicas))
        self.steps_per_epoch = default_steps if steps_per_epoch is None else int(steps_per_epoch)
        lengths = np.array([len(s) for s in self.sequences], dtype=np.float64)
        self._weights = lengths / lengths.sum()

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration draw from ``(seed, epoch)`` (call once per epoch, as DistributedSampler)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.sequential:
            return sum(len(range(0, len(self.sequences[i]), self.frame_step)) for i in self._rank_sequences())
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return self._sequential() if self.sequential else self._train()

    # ---------------------------------------------------------------------------------------------- eval

    def _rank_sequences(self) -> list[int]:
        """This rank's sequences, in their original order; split greedily by frames (longest first)."""
        load = [0] * self.num_replicas
        mine = []
        for i in sorted(range(len(self.sequences)), key=lambda i: (-len(self.sequences[i]), i)):
            r = int(np.argmin(load))
            load[r] += len(self.sequences[i])
            if r == self.rank:
                mine.append(i)
        return sorted(mine)

    def _sequential(self) -> Iterator[list[tuple[int, int]]]:
        for i in self._rank_sequences():
            # The sequence number is the seed: scene ids differ between sequences, and an evaluation dataset
            # (augment=None) ignores it.
            for index in self.sequences[i][::self.frame_step]:
                yield [(index, i)]

    # ---------------------------------------------------------------------------------------------- train

    def _train(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        slots = [_Slot() for _ in range(self.batch_size * self.num_replicas)]
        mine = slots[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        for _ in range(self.steps_per_epoch):
            for slot in slots:  # every rank advances every slot: the generator stays in step across ranks
                if slot.sequence < 0 or self._finished(slot):
                    self._start(slot, slots, rng)
            yield [(self.sequences[s.sequence][s.position], s.seed) for s in mine]
            for slot in slots:
                skip = self.skip_prob > 0 and rng.random() < self.skip_prob
                slot.position += self.frame_step + int(skip)
                slot.played += 1

    def _finished(self, slot: _Slot) -> bool:
        if slot.position >= len(self.sequences[slot.sequence]):
            return True
        return self.max_sequence_length is not None and slot.played >= self.max_sequence_length

    def _start(self, slot: _Slot, slots: list[_Slot], rng: np.random.Generator) -> None:
        busy = {s.sequence for s in slots if s is not slot and s.sequence >= 0}
        weights = self._weights.copy()
        if len(busy) < len(self.sequences):  # prefer a sequence no other slot plays
            weights[list(busy)] = 0.0
            weights /= weights.sum()
        sequence = int(rng.choice(len(self.sequences), p=weights))
        length = len(self.sequences[sequence])
        # Leave room for a full run of max_sequence_length frames when the sequence is long enough.
        span = length if self.max_sequence_length is None else (self.max_sequence_length - 1) * self.frame_step + 1
        last_start = max(0, length - span) if self.max_sequence_length is not None else length - 1
        seed = int(rng.integers(0, _SEED_HIGH))
        while seed == slot.seed:  # a new sequence must get a new scene id, even for the same scene
            seed = int(rng.integers(0, _SEED_HIGH))
        slot.sequence, slot.position, slot.played, slot.seed = sequence, int(rng.integers(0, last_start + 1)), 0, seed
