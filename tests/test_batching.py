"""The fast recipe's length-bucketed sampler: every example once per epoch, little padding, seeded."""

import random

from helpers.batching import ShuffledLengthBuckets, epoch_seed


def _padding(order, lengths, batch_size):
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / padded


def test_each_epoch_is_a_permutation_with_far_less_padding_than_random_batches():
    rng = random.Random(0)
    lengths = [rng.randint(3, 120) for _ in range(1000)]
    sampler = ShuffledLengthBuckets(lengths, batch_size=32, seed=1)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(1000)) and sorted(second) == list(range(1000))
    assert first != second, "a new order every epoch"
    shuffled = list(range(1000))
    rng.shuffle(shuffled)
    assert _padding(first, lengths, 32) < 0.5 * _padding(shuffled, lengths, 32)


def test_same_seed_same_order_and_smaller_buckets_mean_more_random_batches():
    rng = random.Random(1)
    lengths = [rng.randint(3, 120) for _ in range(960)]
    assert list(ShuffledLengthBuckets(lengths, 32, seed=5)) == list(ShuffledLengthBuckets(lengths, 32, seed=5))
    wide = _padding(list(ShuffledLengthBuckets(lengths, 32, bucket_batches=30, seed=5)), lengths, 32)
    narrow = _padding(list(ShuffledLengthBuckets(lengths, 32, bucket_batches=2, seed=5)), lengths, 32)
    assert wide < narrow


def test_no_seed_replays_another_seeds_epoch():
    """Regression: with `seed + epoch`, seed 0's second epoch was seed 1's first."""
    lengths = list(range(3, 259))
    orders = {}
    for seed in range(4):
        sampler = ShuffledLengthBuckets(lengths, 16, bucket_batches=2, seed=seed)
        for epoch in range(3):
            sampler.set_epoch(epoch)
            orders[(seed, epoch)] = tuple(sampler)
    assert len(set(orders.values())) == len(orders), "every (seed, epoch) pair has its own batch order"
    assert len({epoch_seed(s, e) for s in range(50) for e in range(50)}) == 2500
