"""The embedder's training rows: (query, positive, hard negatives...) from the kit's mined TrainingGroups.

MultipleNegativesRankingLoss scores each query against its own positive, its own negatives and every other
row's positive and negatives in the batch, so one mined negative per row already gives a batch of 32 rows
95 negatives per query. All rows need the same number of negative columns: a group mined with fewer
negatives than asked is left out and counted (as sentence-transformers' n-tuple format does), never padded
by repeating a negative, which would weigh that document twice and misstate what the run trained on.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from reranker_kit.finetune.negatives import TrainingGroup

ANCHOR, POSITIVE = "anchor", "positive"


def column_prompts(prompts: dict[str, str], columns: list[str]) -> dict[str, str] | None:
    """The prompt of each training column: the query prompt for the anchor, the document prompt for the rest.

    None for a model without prompts (sentence-transformers then adds nothing).
    """
    by_column = {column: prompts.get("query" if column == ANCHOR else "document") for column in columns}
    by_column = {column: prompt for column, prompt in by_column.items() if prompt}
    return by_column or None


def negative_columns(count: int) -> list[str]:
    return ["negative"] if count == 1 else [f"negative_{number}" for number in range(1, count + 1)]


@dataclass(frozen=True)
class TripleColumns:
    """The training rows as columns, ready for `datasets.Dataset.from_dict`."""

    columns: dict[str, list[str]]
    rows_short_of_negatives: int  # Groups left out: fewer negatives mined than asked.

    @property
    def rows(self) -> int:
        return len(self.columns[ANCHOR])


def build_triples(groups: Sequence[TrainingGroup], corpus: dict[int, str], negatives_per_row: int) -> TripleColumns:
    """One row per group: its query, its positive's text, and `negatives_per_row` negatives' texts.

    Hard negatives come first, then the group's random ones; `negatives_per_row` 0 gives (query, positive)
    pairs that learn from in-batch negatives alone.
    """
    names = negative_columns(negatives_per_row) if negatives_per_row else []
    columns: dict[str, list[str]] = {ANCHOR: [], POSITIVE: [], **{name: [] for name in names}}
    short = 0
    for group in groups:
        negative_ids = list(group.negative_ids[:negatives_per_row])
        if len(negative_ids) < negatives_per_row:
            short += 1
            continue
        columns[ANCHOR].append(group.query)
        columns[POSITIVE].append(corpus[group.positive_id])
        for name, doc_id in zip(names, negative_ids):
            columns[name].append(corpus[doc_id])
    return TripleColumns(columns, short)
