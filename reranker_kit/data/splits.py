"""Splitting labelled queries into training and held-out queries: one dev split, or k folds.

Splits are by query, never by pair, so no query's pairs land on both sides, and both come from one
seeded permutation, so the same seed gives the same split on every machine.
"""

from collections.abc import Iterator, Sequence

import numpy as np

from reranker_kit.data.loading import Query
from reranker_kit.errors import KitError


def seeded_order(count: int, seed: int) -> list[int]:
    """The positions 0..count-1 in the seed's fixed random order."""
    return np.random.default_rng(seed).permutation(count).tolist()


def _partition(queries: Sequence[Query], held_out: set[int]) -> tuple[list[Query], list[Query]]:
    train = [query for position, query in enumerate(queries) if position not in held_out]
    dev = [query for position, query in enumerate(queries) if position in held_out]
    return train, dev


def split_queries(queries: Sequence[Query], dev_ratio: float, seed: int) -> tuple[list[Query], list[Query]]:
    """(train, dev) with round(len * dev_ratio) dev queries; dev_ratio 0 keeps every query for training."""
    dev_count = round(len(queries) * dev_ratio)
    if dev_ratio > 0 and dev_count == 0:
        raise KitError(f"--dev_ratio {dev_ratio} leaves no dev query out of {len(queries)}; raise it "
                       f"(at least {1 / len(queries):.3f}) or pass 0 to train on everything")
    if dev_count >= len(queries):
        raise KitError(f"--dev_ratio {dev_ratio} leaves no training query out of {len(queries)}; lower it")
    return _partition(queries, set(seeded_order(len(queries), seed)[:dev_count]))


def fold_splits(queries: Sequence[Query], folds: int, seed: int) -> Iterator[tuple[list[Query], list[Query]]]:
    """(train, dev) for each fold; every query is in exactly one dev fold."""
    if folds > len(queries):
        raise KitError(f"--cv_folds {folds} is more than the {len(queries)} queries; use fewer folds")
    for dev_positions in np.array_split(np.asarray(seeded_order(len(queries), seed)), folds):
        yield _partition(queries, set(dev_positions.tolist()))
