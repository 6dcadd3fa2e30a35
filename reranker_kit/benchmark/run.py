"""The benchmark as `main.py` runs it: data, first stage, each reranker, fusion, tables and report files."""

import logging
from pathlib import Path

from reranker_kit.basics.errors import KitError, ModelLoadError
from reranker_kit.basics.model_files import resolve_model_name, same_model
from reranker_kit.benchmark.candidates import first_stage_candidates
from reranker_kit.benchmark.comparisons import ranker_comparisons
from reranker_kit.benchmark.encoders import EncoderChoice, choose_encoder
from reranker_kit.benchmark.report import chart_path, check_report_destinations, write_report
from reranker_kit.benchmark.settings import BenchmarkSettings
from reranker_kit.benchmark.training_queries import TrainingQueries, file_overlaps, log_overlaps, run_training_queries
from reranker_kit.benchmark.verdicts import run_statement, verdict
from reranker_kit.data.loading import difficulty_order, display_names, load_corpus, load_queries
from reranker_kit.data.splits import query_key
from reranker_kit.fusion import fused_scores
from reranker_kit.metrics import answer_can_be_judged, evaluate_rankings
from reranker_kit.pipeline import rank, rerank_scores
from reranker_kit.reports.html_report import render_html_report
from reranker_kit.reports.tables import TABLE_METRICS, print_report
from reranker_kit.retrieval.candidates import retrieve_candidates
from reranker_kit.retrieval.first_stage import describe_candidates
from reranker_kit.retrieval.lexical import LexicalIndex
from reranker_kit.run_folder import (
    REPORT_PREFIX,
    base_model_name,
    create_run_dir,
    newest_finished_run,
    stored_fusion,
    stored_fusion_first_stage,
    unusable_run_problem,
)

logger = logging.getLogger("main")
DEFAULT_EVAL_FILES = ("train_data_proptit.xlsx", "test_data_proptit.xlsx")
# The dense or hybrid first stage with the embedder run's base encoder, beside `first_stage` (the run's encoder).
BASE_ENCODER_ROW = "first_stage_base_encoder"
# BM25 over the plain corpus, beside a first stage of another kind: the reference the pipeline is compared with.
BM25_ROW = "bm25"
# How report tables and charts name a "pretrained" row whose model has no trained ranking head (bundled-minilm).
UNTRAINED_HEAD_LABEL = "{name} (untrained head)"


def run_benchmark(settings: BenchmarkSettings) -> None:
    """Every ranker on every query file, printed and written as report files."""

    # Data: every file validated before any model is loaded.
    corpus = load_corpus(settings.corpus_csv)
    paths = eval_paths(settings)
    datasets = {name: load_queries(path, corpus, settings.sheet) for name, path in paths.items()}
    for name, queries in datasets.items():
        warn_about_unjudged_answers(name, queries)

    # What is compared, and the files and folders it reads: no report may be written over any of them.
    fine_tuned_path = find_fine_tuned(settings)
    encoder = None if settings.candidates else choose_encoder(settings.retriever, settings.embedding_model,
                                                              settings.runs_root)
    pretrained_name = pretrained_reranker_name(settings, fine_tuned_path)
    training = run_training_queries(fine_tuned_path, corpus)
    check_report_destinations(settings.report_dir, settings.runs_root, settings.output_json,
                              read_paths(settings, paths, fine_tuned_path, pretrained_name, encoder, training),
                              settings.overwrite_report)
    overlaps = file_overlaps(datasets, paths, training)
    log_overlaps(overlaps)

    # First stage: one index over the corpus (or the user's ranked lists), all queries of a file together.
    candidates, first_stage_info = first_stage_candidates(settings, corpus, datasets, fine_tuned_path, encoder)

    # Rerankers to compare, then every ranker's metrics per file and per difficulty.
    trained = training.trained if training else None
    fusion = resolve_fusion(settings, fine_tuned_path)
    if fusion is not None and settings.fusion_weight == "auto":
        warn_about_fusion_first_stage(fine_tuned_path, settings, encoder.model if encoder else settings.embedding_model)
    rankings = {}  # (ranker, file) -> {qid: ranking}: report.html's per-query view.
    rows = first_stage_rows(settings, corpus, datasets, candidates, encoder, first_stage_info, rankings, trained)
    for label, model_name in (("pretrained", pretrained_name), ("fine_tuned", fine_tuned_path)):
        rows += reranker_rows(label, model_name, fusion if label == "fine_tuned" else None, datasets, candidates,
                              corpus, settings, rankings, trained)

    # Report: tables on screen, CSV/JSON/PNG on disk.
    report_dir = Path(settings.report_dir) if settings.report_dir else create_run_dir(settings.runs_root, prefix=REPORT_PREFIX)
    comparisons = [{**row, "in_sample": row["dataset"] in overlaps and overlaps[row["dataset"]].in_sample}
                   for row in ranker_comparisons(rankings, datasets, settings.k)]
    report = {"corpus_csv": settings.corpus_csv, "retriever": first_stage_info["method"], "first_stage": first_stage_info,
              "top_n": settings.top_n, "k": settings.k,
              "fine_tuned_reranker": str(fine_tuned_path) if fine_tuned_path else None,
              "pretrained_reranker": pretrained_name,
              "fusion_method": fusion[0] if fusion else None, "fusion_weight": fusion[1] if fusion else None,
              "labels": {row["name"]: UNTRAINED_HEAD_LABEL.format(name=row["name"]) for row in rows
                         if row.get("head_trained") is False},
              "training_overlap": {name: overlap.as_json() for name, overlap in overlaps.items()},
              "verdict": verdict(fine_tuned_path, comparisons, overlaps, settings.k),
              "runs": [row for row in rows if row["difficulty"] is None],
              "by_difficulty": [row for row in rows if row["difficulty"] is not None],
              "comparisons": comparisons}
    print_report(report)
    charts = {name: chart_path(report_dir, name) for name in datasets}
    write_report(report, report_dir, Path(settings.output_json) if settings.output_json else None, settings.k,
                 lambda: render_html_report(report, datasets, rankings, corpus, charts))


def eval_paths(settings: BenchmarkSettings) -> dict[str, Path]:
    """{a name unique among the files (a/queries, b/queries): its path}: one file never overwrites another's rows."""
    eval_files = settings.eval_xlsx or [name for name in DEFAULT_EVAL_FILES
                                        if name == DEFAULT_EVAL_FILES[0] or Path(name).is_file()]
    return dict(zip(display_names(eval_files), map(Path, eval_files)))


def read_paths(settings: BenchmarkSettings, query_files: dict[str, Path], fine_tuned_path: Path | None,
               pretrained_name: str | None, encoder: EncoderChoice | None, training: TrainingQueries | None
               ) -> list[tuple[str, Path]]:
    """(what, path) of every file and folder this evaluation reads, for check_report_destinations."""
    paths = [("the corpus CSV (`corpus_csv`)", Path(settings.corpus_csv))]
    paths += [("a query file (`eval_xlsx`)", path) for path in query_files.values()]
    if settings.candidates:
        paths.append(("the candidates file (`candidates`)", Path(settings.candidates)))
    if settings.expansion_xlsx:
        paths.append(("the expansion file (`expansion_xlsx`)", Path(settings.expansion_xlsx)))
    if fine_tuned_path is not None:
        paths.append(("the fine-tuned reranker (`reranker`)", fine_tuned_path))
    if training is not None:
        paths.append(("the fine-tuned run's training file", training.source))
    models = [("the pretrained reranker (`pretrained_reranker`)", pretrained_name)]
    if encoder is not None:
        models += [("the embedding model (`embedding_model`)", encoder.model),
                   ("the embedding model's base encoder", encoder.base_model)]
    paths += [(what, Path(name)) for what, name in models if name and Path(name).exists()]  # A Hub id is no path.
    return paths


def base_encoder_rows(settings: BenchmarkSettings, corpus, datasets: dict, encoder: EncoderChoice | None,
                      first_stage_info: dict, trained: frozenset[str] | None = None) -> list[dict]:
    """The first stage again with the base encoder of the embedder run, beside the fine-tuned one.

    Skipped with a warning when the base cannot be loaded here (a Hub model not in the local cache).
    """
    base = encoder.base_alone() if encoder else None
    if base is None:
        return []
    try:
        candidates, described = first_stage_candidates(settings, corpus, datasets, None, base)
    except ModelLoadError as problem:
        logger.warning("skipping the base encoder's first stage: %s", problem)
        return []
    first_stage_info["base_encoder"] = described
    rows = []
    for name, queries in datasets.items():
        rows += ranker_rows(BASE_ENCODER_ROW, name, queries, rank(candidates[name].first_stage_scores, candidates[name]),
                            corpus, settings.k, trained)
    return rows


def first_stage_rows(settings: BenchmarkSettings, corpus, datasets: dict, candidates: dict, encoder, first_stage_info,
                     rankings: dict, trained) -> list[dict]:
    """The first stage's rows, the base encoder's beside an embedder run's, and BM25 beside any other first stage."""
    rows = []
    for name, queries in datasets.items():
        first_stage = rankings["first_stage", name] = rank(candidates[name].first_stage_scores, candidates[name])
        rows += ranker_rows("first_stage", name, queries, first_stage, corpus, settings.k, trained)
    rows += base_encoder_rows(settings, corpus, datasets, encoder, first_stage_info, trained)
    return rows + bm25_rows(settings, corpus, datasets, first_stage_info, rankings, trained)


def bm25_rows(settings: BenchmarkSettings, corpus, datasets: dict, first_stage_info: dict, rankings: dict,
              trained) -> list[dict]:
    """BM25 over the plain corpus, the club's reference, beside any other first stage: the pipeline is compared with it."""
    if first_stage_info["method"] == "bm25" and not settings.expand_documents:
        return []
    doc_ids = list(corpus)
    index = LexicalIndex([corpus[doc_id] for doc_id in doc_ids], method="bm25")
    rows = []
    for name, queries in datasets.items():
        candidates = retrieve_candidates(index, doc_ids, queries, settings.top_n)
        rankings[BM25_ROW, name] = rank(candidates.first_stage_scores, candidates)
        rows += ranker_rows(BM25_ROW, name, queries, rankings[BM25_ROW, name], corpus, settings.k, trained)
    return rows


def reranker_rows(label: str, model_name, fusion: tuple[str, float] | None, datasets: dict, candidates: dict, corpus,
                  settings, rankings: dict, trained: frozenset[str] | None = None) -> list[dict]:
    """One reranker's rows for every file, and the fused rows when a (method, weight) is given.

    Each ranking is also kept in `rankings`, keyed (ranker, file), for the per-query report. A pretrained
    row whose model has no trained ranking head (a sentence encoder given a fresh head) records
    `head_trained: false`: it ranks with random weights, and the report labels it so.
    """
    if model_name is None:
        return []
    reranker = load_reranker(model_name, settings, required=label == "fine_tuned")
    if reranker is None:
        return []
    untrained = label == "pretrained" and not head_is_trained(reranker)
    if untrained:
        logger.warning("%s has no trained ranking head, so the %s row ranks with a random head: it is labelled %r, "
                       "a floor rather than a pretrained reranker", model_name, label,
                       UNTRAINED_HEAD_LABEL.format(name=label))
    rows = []
    for name, queries in datasets.items():
        logger.info("%s: reranking %s (%d pairs)", label, name, sum(map(len, candidates[name].ids.values())))
        scores = rerank_scores(reranker.compute_score, queries, candidates[name], corpus)
        rankings[label, name] = rank(scores, candidates[name])
        rows += [{**row, "head_trained": False} if untrained else row
                 for row in ranker_rows(label, name, queries, rankings[label, name], corpus, settings.k, trained)]
        if fusion is not None:
            method, weight = fusion
            fused_label = f"fused_{method}_w{weight:.1f}"
            rankings[fused_label, name] = rank(fused_scores(candidates[name], scores, weight, method), candidates[name])
            rows += ranker_rows(fused_label, name, queries, rankings[fused_label, name], corpus, settings.k, trained)
    return rows


def find_fine_tuned(settings: BenchmarkSettings) -> Path | None:
    if settings.reranker == "none":
        return None
    if settings.reranker != "auto":
        resolve_model_name(settings.reranker)  # A missing folder or damaged weights fail now, before any model loads.
        path = Path(settings.reranker)
        problem = unusable_run_problem(path)
        if problem:
            raise KitError(f"`reranker` {problem}")
        report_verdict(path)
        return path
    run_dir = newest_finished_run(settings.runs_root)
    if run_dir is not None:
        logger.info("fine-tuned reranker: %s (newest finished run under %s)", run_dir, settings.runs_root)
        report_verdict(run_dir)
        return run_dir
    logger.warning("no finished run under %s: reporting the first stage%s only. Fine-tune first with "
                   "fine_tune_reranker.py, or pass `reranker` PATH.", settings.runs_root,
                   "" if settings.pretrained_reranker == "none" else " and the pretrained reranker")
    return None


def report_verdict(run_dir: Path) -> None:
    """Says which weights the run kept against its base, and what its dev interval says of them (verdicts.py)."""
    statement = run_statement(run_dir)
    if statement is None:
        return
    if statement["saved"] == "base":
        logger.warning("%s, so the fine_tuned row holds the base model's weights", statement["text"])
    else:
        logger.info("%s", statement["text"])


def head_is_trained(reranker) -> bool:
    """Whether the reranker's ranking head was trained (models.reranker.Reranker.head_is_trained, where it exists)."""
    return bool(getattr(reranker, "head_is_trained", True))


def warn_about_unjudged_answers(name: str, queries) -> None:
    """Says which queries context_recall leaves out: an empty answer gives it nothing to judge (issue #32)."""
    unjudged = [query.row for query in queries if not answer_can_be_judged(query.answer)]
    if unjudged:
        logger.warning("%s: %d of %d queries have no 'Ground truth answer' (rows %s%s); context_recall is the mean over "
                       "the others, and metrics.json counts them in context_recall_left_out. Fill in the answers to "
                       "judge them", name, len(unjudged), len(queries), ", ".join(map(str, unjudged[:10])),
                       ", ..." if len(unjudged) > 10 else "")


def pretrained_reranker_name(settings: BenchmarkSettings, fine_tuned_path: Path | None) -> str | None:
    if settings.pretrained_reranker == "none":
        return None
    if settings.pretrained_reranker != "auto":
        return settings.pretrained_reranker
    return base_model_name(fine_tuned_path) if fine_tuned_path and fine_tuned_path.is_dir() else None


def resolve_fusion(settings: BenchmarkSettings, fine_tuned_path: Path | None) -> tuple[str, float] | None:
    """(method, weight) for the fused row: the flags, else what the training run chose on held-out queries."""
    if settings.fusion_weight == "none" or fine_tuned_path is None:
        return None
    stored = stored_fusion(fine_tuned_path) if fine_tuned_path.is_dir() else None  # A Hub model has none.
    if settings.fusion_weight == "auto" and stored is None:
        logger.info("%s has no usable fusion choice (trained without dev queries?): no fused row", fine_tuned_path)
        return None
    method = settings.fusion_method if settings.fusion_method != "auto" else (stored[0] if stored else "minmax")
    weight = float(settings.fusion_weight) if settings.fusion_weight != "auto" else stored[1]
    return method, weight


def warn_about_fusion_first_stage(fine_tuned_path: Path, settings: BenchmarkSettings, embedding_model: str
                                  ) -> None:
    """Says when the run's fusion weight was chosen on candidates unlike the ones ranked here.

    A weight tuned on BM25's top 20 says little about how to mix the reranker with a hybrid or an expanded
    index: the first-stage scores it is fused with are another scale and another quality.
    """
    chosen_on = stored_fusion_first_stage(fine_tuned_path)
    if chosen_on is None:  # Runs before the first stage was recorded in full.
        return
    here = describe_candidates(settings.retriever, settings.top_n, settings.expand_documents, embedding_model,
                               from_file=settings.candidates is not None)
    differences = [f"{key} {chosen_on[key]!r} there, {value!r} here" for key, value in here.items()
                   if key in chosen_on and chosen_on[key] != value
                   and not (key == "embedding_model" and same_model(chosen_on[key], value))]
    if differences:
        logger.warning("%s/fusion.json: the fusion weight was chosen on dev candidates unlike the ones ranked here "
                       "(%s), so the fused row may rank below the first stage; train with the same first stage, or "
                       "give `fusion_weight`", fine_tuned_path, "; ".join(differences))


def load_reranker(model_name, settings: BenchmarkSettings, required: bool):
    from reranker_kit.models.reranker import Reranker  # torch and transformers only when a reranker is compared.

    try:
        reranker = Reranker(model_name=str(model_name), max_length=settings.max_length, batch_size=settings.batch_size,
                            show_progress_bar=True)
    except ModelLoadError as problem:
        if required:
            raise
        logger.warning("skipping the pretrained reranker: %s", problem)
        return None
    logger.info("loaded reranker %s on %s", model_name, reranker.device)
    return reranker


def ranker_rows(ranker: str, dataset: str, queries, rankings, corpus, ks, trained: frozenset[str] | None = None
                ) -> list[dict]:
    """The ranker's metrics on the whole file, then on each difficulty level present.

    `training_queries`: how many of the row's queries the fine-tuned run trained on (None: no run to ask).
    """
    def evaluate(subset):
        return evaluate_rankings({query.qid: rankings[query.qid] for query in subset},
                                 {query.qid: query.relevant_ids for query in subset}, ks, doc_texts=corpus,
                                 answers={query.qid: query.answer for query in subset}, metrics=TABLE_METRICS)

    def left_out(subset) -> int:  # Queries context_recall could not judge (an empty answer).
        return sum(not answer_can_be_judged(query.answer) for query in subset)

    def seen(subset):
        return None if trained is None else sum(query_key(query.text) in trained for query in subset)

    rows = [{"name": ranker, "dataset": dataset, "difficulty": None, "queries": len(queries),
             "training_queries": seen(queries), "metrics": evaluate(queries),
             "context_recall_left_out": left_out(queries)}]
    for level in sorted({query.difficulty for query in queries if query.difficulty is not None}, key=difficulty_order):
        subset = [query for query in queries if query.difficulty == level]
        rows.append({"name": ranker, "dataset": dataset, "difficulty": level, "queries": len(subset),
                     "training_queries": seen(subset), "metrics": evaluate(subset),
                     "context_recall_left_out": left_out(subset)})
    return rows
