"""How training examples are grouped into batches in the fast recipe.

Padding every batch only to its longest example saves most of the compute on GLUE's short
sentences, but only if a batch holds examples of similar length. transformers' LengthGroupedSampler
does that grouping, then yields each group's batches from longest to shortest. Measured here
(SST-2, 4,000 examples, 1 epoch, 3 seeds), that ordering cost accuracy against random batches
(BitFit 0.740 vs 0.768, LoRA 0.806 vs 0.817). `ShuffledLengthBuckets` groups the same way and
then shuffles the order of all batches, keeping the padding saving (see README "Throughput").
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """An independent 63-bit seed for one (run seed, epoch) pair.

    `seed + epoch` made seed 0's second epoch replay seed 1's first (recipe version 1); numpy's
    SeedSequence hashes the pair instead.
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class ShuffledLengthBuckets(Sampler[int]):
    """Indices such that consecutive runs of `batch_size` have similar lengths, in random batch order.

    Each epoch: shuffle all examples, cut them into buckets of `bucket_batches * batch_size`, sort
    each bucket by length, cut buckets into batches, shuffle the batches. Each (seed, epoch) pair
    gets its own random stream (`epoch_seed`), so no seed's epoch replays another seed's epoch.
    """

    DEFAULT_BUCKET_BATCHES = 50

    def __init__(
        self, lengths: list[int], batch_size: int, bucket_batches: int = DEFAULT_BUCKET_BATCHES, seed: int = 0
    ):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.bucket_size = batch_size * bucket_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        batches = []
        for start in range(0, len(order), self.bucket_size):
            bucket = sorted(order[start : start + self.bucket_size], key=lambda i: self.lengths[i])
            batches += [bucket[i : i + self.batch_size] for i in range(0, len(bucket), self.batch_size)]
        for position in torch.randperm(len(batches), generator=generator).tolist():
            yield from batches[position]
