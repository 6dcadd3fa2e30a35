"""The benchmark as `main.py` runs it: data, first stage, each reranker, fusion, tables and report files."""

import logging
from pathlib import Path

from reranker_kit.basics.errors import DataError, KitError, ModelLoadError
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.benchmark.candidates import first_stage_candidates
from reranker_kit.benchmark.comparisons import ranker_comparisons
from reranker_kit.benchmark.encoders import EncoderChoice, choose_encoder
from reranker_kit.benchmark.report import chart_path, check_report_destinations, write_report
from reranker_kit.benchmark.settings import BenchmarkSettings
from reranker_kit.data.loading import difficulty_order, display_names, load_corpus, load_queries
from reranker_kit.data.splits import query_key
from reranker_kit.fusion import fused_scores
from reranker_kit.metrics import answer_can_be_judged, evaluate_rankings
from reranker_kit.pipeline import rank, rerank_scores
from reranker_kit.reports.html_report import render_html_report
from reranker_kit.reports.tables import TABLE_METRICS, print_comparison_tables, print_difficulty_tables, print_tables
from reranker_kit.retrieval.first_stage import describe_candidates
from reranker_kit.run_folder import (
    REPORT_PREFIX,
    base_model_name,
    create_run_dir,
    newest_finished_run,
    stored_fusion,
    stored_fusion_first_stage,
    stored_verdict,
    training_file,
    unusable_run_problem,
)

logger = logging.getLogger("main")
DEFAULT_EVAL_FILES = ("train_data_proptit.xlsx", "test_data_proptit.xlsx")
# The dense or hybrid first stage with the embedder run's base encoder, beside `first_stage` (the run's encoder).
BASE_ENCODER_ROW = "first_stage_base_encoder"


def run_benchmark(settings: BenchmarkSettings) -> None:
    """Every ranker on every query file, printed and written as report files."""

    # Data: every file validated before any model is loaded.
    corpus = load_corpus(settings.corpus_csv)
    eval_files = settings.eval_xlsx or [name for name in DEFAULT_EVAL_FILES
                                        if name == DEFAULT_EVAL_FILES[0] or Path(name).is_file()]
    # Keyed by a name unique among the files (a/queries, b/queries): one file never overwrites another's rows.
    datasets = {name: load_queries(path, corpus, settings.sheet)
                for name, path in zip(display_names(eval_files), eval_files)}
    for name, queries in datasets.items():
        warn_about_unjudged_answers(name, queries)
    check_report_destinations(settings.report_dir, settings.runs_root, settings.output_json)

    # First stage: one index over the corpus (or the user's ranked lists), all queries of a file together.
    fine_tuned_path = find_fine_tuned(settings)
    encoder = None if settings.candidates else choose_encoder(settings.retriever, settings.embedding_model,
                                                              settings.runs_root)
    candidates, first_stage_info = first_stage_candidates(settings, corpus, datasets, fine_tuned_path, encoder)

    # Rerankers to compare, then every ranker's metrics per file and per difficulty.
    warn_about_seen_queries(datasets, fine_tuned_path, corpus)
    pretrained_name = pretrained_reranker_name(settings, fine_tuned_path)
    fusion = resolve_fusion(settings, fine_tuned_path)
    if fusion is not None and settings.fusion_weight == "auto":
        warn_about_fusion_first_stage(fine_tuned_path, settings, encoder.model if encoder else settings.embedding_model)
    rows = []
    rankings = {}  # (ranker, file) -> {qid: ranking}: report.html's per-query view.
    for name, queries in datasets.items():
        first_stage = rankings["first_stage", name] = rank(candidates[name].first_stage_scores, candidates[name])
        rows += ranker_rows("first_stage", name, queries, first_stage, corpus, settings.k)
    rows += base_encoder_rows(settings, corpus, datasets, encoder, first_stage_info)
    for label, model_name in (("pretrained", pretrained_name), ("fine_tuned", fine_tuned_path)):
        rows += reranker_rows(label, model_name, fusion if label == "fine_tuned" else None, datasets, candidates,
                              corpus, settings, rankings)

    # Report: tables on screen, CSV/JSON/PNG on disk.
    report_dir = Path(settings.report_dir) if settings.report_dir else create_run_dir(settings.runs_root, prefix=REPORT_PREFIX)
    report = {"corpus_csv": settings.corpus_csv, "retriever": first_stage_info["method"], "first_stage": first_stage_info,
              "top_n": settings.top_n, "k": settings.k,
              "fine_tuned_reranker": str(fine_tuned_path) if fine_tuned_path else None,
              "pretrained_reranker": pretrained_name,
              "fusion_method": fusion[0] if fusion else None, "fusion_weight": fusion[1] if fusion else None,
              "runs": [row for row in rows if row["difficulty"] is None],
              "by_difficulty": [row for row in rows if row["difficulty"] is not None],
              "comparisons": ranker_comparisons(rankings, datasets, settings.k)}
    print_tables(report["runs"], settings.k)
    print_difficulty_tables(report["by_difficulty"], settings.k)
    print_comparison_tables(report["comparisons"])
    charts = {name: chart_path(report_dir, name) for name in datasets}
    write_report(report, report_dir, Path(settings.output_json) if settings.output_json else None, settings.k,
                 lambda: render_html_report(report, datasets, rankings, corpus, charts))


def base_encoder_rows(settings: BenchmarkSettings, corpus, datasets: dict, encoder: EncoderChoice | None,
                      first_stage_info: dict) -> list[dict]:
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
                            corpus, settings.k)
    return rows


def reranker_rows(label: str, model_name, fusion: tuple[str, float] | None, datasets: dict, candidates: dict, corpus,
                  settings, rankings: dict) -> list[dict]:
    """One reranker's rows for every file, and the fused rows when a (method, weight) is given.

    Each ranking is also kept in `rankings`, keyed (ranker, file), for the per-query report.
    """
    if model_name is None:
        return []
    reranker = load_reranker(model_name, settings, required=label == "fine_tuned")
    if reranker is None:
        return []
    rows = []
    for name, queries in datasets.items():
        logger.info("%s: reranking %s (%d pairs)", label, name, sum(map(len, candidates[name].ids.values())))
        scores = rerank_scores(reranker.compute_score, queries, candidates[name], corpus)
        rankings[label, name] = rank(scores, candidates[name])
        rows += ranker_rows(label, name, queries, rankings[label, name], corpus, settings.k)
        if fusion is not None:
            method, weight = fusion
            fused_label = f"fused_{method}_w{weight:.1f}"
            rankings[fused_label, name] = rank(fused_scores(candidates[name], scores, weight, method), candidates[name])
            rows += ranker_rows(fused_label, name, queries, rankings[fused_label, name], corpus, settings.k)
    return rows


def find_fine_tuned(settings: BenchmarkSettings) -> Path | None:
    if settings.reranker == "none":
        return None
    if settings.reranker != "auto":
        resolve_model_name(settings.reranker)  # A missing folder or damaged weights fail now, before any model loads.
        path = Path(settings.reranker)
        problem = unusable_run_problem(path)
        if problem:
            raise KitError(f"--reranker {problem}")
        report_verdict(path)
        return path
    run_dir = newest_finished_run(settings.runs_root)
    if run_dir is not None:
        logger.info("fine-tuned reranker: %s (newest finished run under %s)", run_dir, settings.runs_root)
        report_verdict(run_dir)
        return run_dir
    logger.warning("no finished run under %s: reporting the first stage%s only. Fine-tune first with "
                   "fine_tune_reranker.py, or pass --reranker PATH.", settings.runs_root,
                   "" if settings.pretrained_reranker == "none" else " and the pretrained reranker")
    return None


def report_verdict(run_dir: Path) -> None:
    """Says what the run's own dev queries said of its weights against the base it started from."""
    verdict = stored_verdict(run_dir) if run_dir.is_dir() else None
    if verdict is None:
        return
    if verdict["verdict"] == "no gain":
        logger.warning("%s: verdict no gain. Its training did not beat the base model on its dev queries, so it "
                       "holds the base model's weights (%s)", run_dir, verdict["detail"])
    else:
        logger.info("%s: verdict gain, %s weights (%s)", run_dir, verdict["saved"], verdict["detail"])


def warn_about_seen_queries(datasets: dict, fine_tuned_path: Path | None, corpus: dict[int, str]) -> None:
    """Says when evaluated queries are also in the run's training file: their metrics flatter the model."""
    train_path = training_file(fine_tuned_path) if fine_tuned_path and fine_tuned_path.is_dir() else None
    if train_path is None:
        return
    try:
        trained = {query_key(query.text) for query in load_queries(train_path, corpus)}
    except DataError as problem:  # The corpus changed since training: the check is not worth failing for.
        logger.info("cannot compare with the run's training file: %s", problem)
        return
    for name, queries in datasets.items():
        seen = [query for query in queries if query_key(query.text) in trained]
        if seen and Path(name).name != train_path.stem:
            examples = "; ".join(f"row {query.row} {query.text!r}" for query in seen[:3])
            logger.warning("%s: %d of %d queries also appear in the training file %s of this run, so the fine-tuned "
                           "and fused rows are flattered on them: %s%s", name, len(seen), len(queries), train_path,
                           examples, "; ..." if len(seen) > 3 else "")


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
                   if key in chosen_on and chosen_on[key] != value]
    if differences:
        logger.warning("%s/fusion.json: the fusion weight was chosen on dev candidates unlike the ones ranked here "
                       "(%s), so the fused row may rank below the first stage; train with the same first stage, or "
                       "give --fusion_weight", fine_tuned_path, "; ".join(differences))


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


def ranker_rows(ranker: str, dataset: str, queries, rankings, corpus, ks) -> list[dict]:
    """The ranker's metrics on the whole file, then on each difficulty level present."""
    def evaluate(subset):
        return evaluate_rankings({query.qid: rankings[query.qid] for query in subset},
                                 {query.qid: query.relevant_ids for query in subset}, ks, doc_texts=corpus,
                                 answers={query.qid: query.answer for query in subset}, metrics=TABLE_METRICS)

    def left_out(subset) -> int:  # Queries context_recall could not judge (an empty answer).
        return sum(not answer_can_be_judged(query.answer) for query in subset)

    rows = [{"name": ranker, "dataset": dataset, "difficulty": None, "queries": len(queries), "metrics": evaluate(queries),
             "context_recall_left_out": left_out(queries)}]
    for level in sorted({query.difficulty for query in queries if query.difficulty is not None}, key=difficulty_order):
        subset = [query for query in queries if query.difficulty == level]
        rows.append({"name": ranker, "dataset": dataset, "difficulty": level, "queries": len(subset),
                     "metrics": evaluate(subset), "context_recall_left_out": left_out(subset)})
    return rows
