"""Splitting labelled queries into training and held-out queries: one dev split, or k folds.

Splits are by query, never by pair, so no query's pairs land on both sides, and both come from one
seeded permutation, so the same seed gives the same split on every machine. Repeated queries are
merged first (`merge_duplicate_queries`), so the same question never sits on both sides.
"""

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from reranker_kit.basics.errors import KitError
from reranker_kit.data.loading import Query
from reranker_kit.data.loading import text_key as query_key  # Two queries are the same question when their texts are.

logger = logging.getLogger(__name__)
# How many repeated queries the note names before summarising.
EXAMPLES_IN_NOTE = 3


def merge_duplicate_queries(queries: Sequence[Query]) -> list[Query]:
    """One query per distinct (normalised) text, relevant to the union of its copies' ground truths.

    The first copy keeps its place, text, answer and difficulty; a note names the merged rows. Real club
    files repeat a few questions (the shipped sample does too), and merging is the whole remedy, so it is
    a note, not a warning.
    """
    merged: dict[str, Query] = {}
    repeats: dict[str, list[int]] = {}
    for query in queries:
        key = query_key(query.text)
        if key not in merged:
            merged[key] = query
            continue
        first = merged[key]
        merged[key] = replace(first, relevant_ids=tuple(dict.fromkeys(first.relevant_ids + query.relevant_ids)))
        repeats.setdefault(key, [first.row]).append(query.row)
    if repeats:
        examples = "; ".join(", ".join(map(str, rows)) for rows in list(repeats.values())[:EXAMPLES_IN_NOTE])
        logger.info("%s: %d repeated quer%s (rows %s%s), each trained as one with the union of its ground truths",
                    queries[0].source, len(repeats), "y" if len(repeats) == 1 else "ies", examples,
                    "; ..." if len(repeats) > EXAMPLES_IN_NOTE else "")
    return list(merged.values())


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
    if dev_ratio > 0 and len(queries) < 2:
        raise KitError(f"`dev_ratio` {dev_ratio} needs at least 2 queries, the file has {len(queries)}; pass "
                       "`dev_ratio` 0 to train on it without dev queries (then no checkpoint or fusion is chosen)")
    if dev_ratio > 0 and dev_count == 0:
        raise KitError(f"`dev_ratio` {dev_ratio} leaves no dev query out of {len(queries)}; raise it "
                       f"(at least {1 / len(queries):.3f}) or pass 0 to train on everything")
    if dev_count >= len(queries):
        raise KitError(f"`dev_ratio` {dev_ratio} leaves no training query out of {len(queries)}; lower it")
    return _partition(queries, set(seeded_order(len(queries), seed)[:dev_count]))


def fold_splits(queries: Sequence[Query], folds: int, seed: int) -> Iterator[tuple[list[Query], list[Query]]]:
    """(train, dev) for each fold; every query is in exactly one dev fold."""
    if folds > len(queries):
        raise KitError(f"`cv_folds` {folds} is more than the {len(queries)} queries; use fewer folds")
    for dev_positions in np.array_split(np.asarray(seeded_order(len(queries), seed)), folds):
        yield _partition(queries, set(dev_positions.tolist()))
