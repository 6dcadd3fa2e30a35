"""main.py's settings as one typed, frozen object, built once from its checked flags (`commands.benchmark_flags`)."""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class BenchmarkSettings:
    corpus_csv: str
    eval_xlsx: tuple[str, ...] | None  # None: the default query files.
    sheet: str | None  # --sheet (issue #32): the sheet of a query file with several in the schema.
    reranker: str  # A model folder, "auto" (newest finished run) or "none".
    pretrained_reranker: str
    retriever: str
    embedding_model: str
    embedding_cache_dir: str
    candidates: str | None
    expand_documents: bool
    expansion_xlsx: str | None
    top_n: int
    k: tuple[int, ...]
    fusion_weight: str  # "auto", "none" or a number in [0, 1].
    fusion_method: str
    batch_size: int
    max_length: int
    runs_root: str
    report_dir: str | None
    overwrite_report: bool  # Replace the earlier report in --report_dir (it may hold nothing else).
    output_json: str | None

    @classmethod
    def from_arguments(cls, arguments: dict) -> "BenchmarkSettings":
        values = {item.name: arguments[item.name] for item in fields(cls)}
        values["k"] = tuple(values["k"])
        values["eval_xlsx"] = tuple(values["eval_xlsx"]) if values["eval_xlsx"] else None
        return cls(**values)
