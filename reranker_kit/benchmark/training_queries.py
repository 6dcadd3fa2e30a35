"""Which evaluated queries the fine-tuned run trained on, so main.py can mark a file's tables in-sample.

A run records its training file (training_info.json, an absolute path), the flags of its dev split
(`dev_ratio`, `seed`), how many training and dev queries it had, and the file's content hash at its first
start (run_started.json). The split is seeded (`data.splits.split_queries`, after repeated queries are
merged into their first copy), so the same file, ratio and seed give the same training queries here as in
the run. Queries are matched by their normalised text (`query_key`), as training merges repeats.

A file edited since the run (another hash, other counts) cannot be split the same way: every query of it
then counts as a training query, an upper bound, and the notes say so.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from reranker_kit.basics.errors import DataError, KitError
from reranker_kit.basics.files import file_sha256
from reranker_kit.data.loading import Query, load_queries
from reranker_kit.data.splits import query_key, split_queries
from reranker_kit.finetune.starts import read_starts
from reranker_kit.run_folder import read_run_info, training_file

logger = logging.getLogger("main")
# Queries a warning names before summarising.
EXAMPLES = 3


@dataclass(frozen=True)
class TrainingQueries:
    """The query keys a run trained on and the keys of its dev queries, from its training file."""

    source: Path
    trained: frozenset[str]
    dev: frozenset[str]
    exact: bool  # False: the split could not be reproduced, and `trained` is every query of the file.


@dataclass(frozen=True)
class FileOverlap:
    """How many queries of one evaluated file the run trained on (and held out as dev queries)."""

    dataset: str
    queries: int
    trained: int
    dev: int
    training_file: str
    exact: bool
    is_training_file: bool  # The evaluated file is the run's own training file.
    examples: tuple[str, ...]  # "row 6 'query text'" of the first queries the run trained on or held out.

    @property
    def in_sample(self) -> bool:
        return self.trained > 0

    def tag(self) -> str:
        """The short mark every table heading of an in-sample file carries."""
        bound = "" if self.exact else "up to "
        return f"in-sample: the fine-tuned run trained on {bound}{self.trained} of these {self.queries} queries"

    def note(self) -> str:
        """One sentence: what the overlap is and what it means for the fine-tuned and fused rows."""
        unsure = ("" if self.exact else f" ({self.training_file} changed since the run, so its split could not be "
                  "reproduced: every query of it is counted)")
        if self.is_training_file:
            dev = f" and {self.dev} its dev queries" if self.dev else ""
            return (f"{self.dataset} is the run's training file: {self.trained} of its {self.queries} queries were "
                    f"trained on{dev}{unsure}, so the fine_tuned and fused rows are in-sample and say little about "
                    "new queries")
        examples = "; ".join(self.examples) + ("; ..." if self.trained + self.dev > len(self.examples) else "")
        return (f"{self.dataset}: {self.trained + self.dev} of {self.queries} queries also appear in the training file "
                f"{self.training_file} of this run ({self.trained} trained on, {self.dev} its dev queries, which chose "
                f"its checkpoint and fusion weight){unsure}, so the fine_tuned and fused rows are flattered on them: "
                f"{examples}")

    def as_json(self) -> dict:
        return {"queries": self.queries, "training_queries": self.trained, "dev_queries": self.dev,
                "in_sample": self.in_sample, "exact": self.exact, "training_file": self.training_file,
                "is_training_file": self.is_training_file, "tag": self.tag() if self.in_sample else None,
                "note": self.note() if self.trained or self.dev or self.is_training_file else None}


def run_training_queries(run_dir: Path | None, corpus: dict[int, str]) -> TrainingQueries | None:
    """The training and dev query keys of a finished run; None without a run or its training file."""
    source = training_file(run_dir) if run_dir is not None and run_dir.is_dir() else None
    if source is None:
        return None
    try:
        queries = load_queries(source, corpus)
    except DataError as problem:  # The corpus changed since training: the check is not worth failing for.
        logger.info("cannot compare with the run's training file: %s", problem)
        return None
    distinct: dict[str, Query] = {}
    for query in queries:
        distinct.setdefault(query_key(query.text), query)  # Training keeps a repeated query's first copy.
    split = reproduced_split(run_dir, source, list(distinct.values()))
    if split is None:
        return TrainingQueries(source, frozenset(distinct), frozenset(), exact=False)
    train, dev = split
    return TrainingQueries(source, frozenset(map(query_key, (query.text for query in train))),
                           frozenset(map(query_key, (query.text for query in dev))), exact=True)


def reproduced_split(run_dir: Path, source: Path, distinct: list[Query]) -> tuple[list[Query], list[Query]] | None:
    """The run's (train, dev) queries, when the file, the split's flags and the recorded counts all agree."""
    info = read_run_info(run_dir) or {}
    arguments, data = info.get("arguments") or {}, info.get("data") or {}
    starts = read_starts(run_dir)
    recorded_hash = ((starts[0].get("file_sha256") or {}).get("train_xlsx") if starts else None)
    if recorded_hash is None or recorded_hash != file_sha256(source):
        return None
    try:
        train, dev = split_queries(distinct, float(arguments["dev_ratio"]), int(arguments["seed"]))
    except (KeyError, TypeError, ValueError, KitError):
        return None
    if (data.get("train_queries"), data.get("dev_queries")) != (len(train), len(dev)):
        return None
    return train, dev


def file_overlaps(datasets: dict[str, list[Query]], paths: dict[str, Path],
                  training: TrainingQueries | None) -> dict[str, FileOverlap]:
    """Each evaluated file's overlap with the run's training and dev queries; empty without a run."""
    if training is None:
        return {}
    overlaps = {}
    for name, queries in datasets.items():
        keys = [query_key(query.text) for query in queries]
        seen = [query for query, key in zip(queries, keys) if key in training.trained or key in training.dev]
        overlaps[name] = FileOverlap(
            dataset=name, queries=len(queries), trained=sum(key in training.trained for key in keys),
            dev=sum(key in training.dev for key in keys), training_file=str(training.source), exact=training.exact,
            is_training_file=Path(paths[name]).resolve() == training.source.resolve(),
            examples=tuple(f"row {query.row} {query.text!r}" for query in seen[:EXAMPLES]))
    return overlaps


def log_overlaps(overlaps: dict[str, FileOverlap]) -> None:
    """The run's own training file is in-sample by design (INFO); another file's queries seen in training warn."""
    for overlap in overlaps.values():
        if overlap.is_training_file:
            logger.info("%s", overlap.note())
        elif overlap.trained or overlap.dev:
            logger.warning("%s", overlap.note())
