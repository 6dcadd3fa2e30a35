"""Both stages cross-validated on the shipped sample: BM25, the encoder zero-shot and fine-tuned (dense and
hybrid), the reranker trained on negatives its fold's hybrid mined, and the fused row main.py applies.

    OMP_NUM_THREADS=2 python bench/two_stage_cv.py --base_model bundled-e5 --workdir /tmp/two-stage/e5

Per fold (the kit's own `fold_splits`, seed 42, over the merged train queries) it writes the fold's
training queries to an xlsx and runs, with each CLI's defaults (on a CPU: its CPU-sized settings):
  1. fine_tune_embedder.py --base_model M (its dev split chooses the checkpoint and the hybrid weight);
  2. fine_tune_reranker.py --base_model M --hard_neg_method hybrid --embedding_model <that run>;
then ranks the fold's held-out queries with every first stage and the reranker over the fine-tuned hybrid's
top 20, and keeps the per-query metrics. A fold whose runs finished is not trained again (the script can be
stopped and started). The report pools the held-out queries of every fold (each query once) and compares
each row with BM25: mean ± sd over folds, paired 95% interval and randomization p-value.
Hybrid rows: at the weight the fold's embedder run chose on its own dev queries (hybrid.json, the kit's
rule), at the best weight under the guard on those dev queries before shrinking (`unshrunk`), at the weight
the guarded rule picks on the other folds' held-out queries (`pooled`), and at fixed weights, so a rule that
leaves a gain on the table shows.
"""

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reranker_kit.basics.scores import normalise
from reranker_kit.data.loading import load_corpus, load_queries
from reranker_kit.data.splits import fold_splits, merge_duplicate_queries
from reranker_kit.fusion import fused_scores, parse_setting
from reranker_kit.metrics import per_query_metrics
from reranker_kit.metrics.paired import compare_paired
from reranker_kit.pipeline import rank, rerank_scores
from reranker_kit.retrieval.base import select_top_k
from reranker_kit.retrieval.candidates import Candidates
from reranker_kit.retrieval.dense import DenseIndex, SentenceEncoder
from reranker_kit.retrieval.lexical import LexicalIndex
from reranker_kit.run_folder import (
    EMBEDDER_PREFIX,
    HYBRID_FILE,
    RUN_PREFIX,
    newest_finished_run,
    stored_fusion,
    stored_hybrid_weight,
)

REPOSITORY = Path(__file__).resolve().parent.parent
METRICS = ("hit", "mrr", "ndcg", "recall")
KS = (3, 5, 7, 20)
FIXED_WEIGHTS = (0.3, 0.5, 0.7)
GRID = tuple(step / 10 for step in range(11))
SHOWN = ("hit@3", "mrr@3", "mrr@5", "ndcg@5", "recall@20")
logger = logging.getLogger("two_stage_cv")


def write_queries(queries, path: Path) -> None:
    """The club's schema: Query, Ground truth document ("5" or "15, 37"), Ground truth answer, Difficulty."""
    pd.DataFrame({"Query": [query.text for query in queries],
                  "Ground truth document": [", ".join(map(str, query.relevant_ids)) for query in queries],
                  "Ground truth answer": [query.answer for query in queries],
                  "Difficulty": [query.difficulty for query in queries]}).to_excel(path, index=False)


def train(script: str, arguments: list[str], log: Path) -> float:
    started = time.time()
    with log.open("w") as handle:
        subprocess.run([sys.executable, str(REPOSITORY / script), *arguments], check=True, stdout=handle,
                       stderr=subprocess.STDOUT, cwd=REPOSITORY)
    return time.time() - started


def hybrid_scores(bm25: np.ndarray, dense: np.ndarray, weight: float) -> np.ndarray:
    """As retrieval/hybrid.py: weight * minmax(dense) + (1 - weight) * minmax(bm25), per query."""
    return np.stack([weight * normalise(d, "minmax") + (1 - weight) * normalise(b, "minmax") for b, d in zip(bm25, dense)])


def rankings_of(scores: np.ndarray, queries, doc_ids: list[int], depth: int) -> dict:
    positions, _ = select_top_k(scores, depth)
    return {query.qid: [doc_ids[p] for p in row] for query, row in zip(queries, positions)}


def evaluate_fold(corpus, held_out, base_model: str, embedder_run: Path, reranker_run: Path) -> dict:
    """{row: {qid: {metric: value}}} on the fold's held-out queries; also the weights used."""
    from reranker_kit.models.reranker import Reranker

    doc_ids = list(corpus)
    documents = [corpus[doc_id] for doc_id in doc_ids]
    texts = [query.text for query in held_out]
    relevant = {query.qid: query.relevant_ids for query in held_out}
    depth = max(KS)

    def measured(rankings):
        return per_query_metrics(rankings, relevant, KS, metrics=METRICS)

    bm25 = LexicalIndex(documents, method="bm25").score(texts)
    dense = {name: DenseIndex(documents, SentenceEncoder.load(model), cache_dir=None).score(texts)
             for name, model in (("base", base_model), ("fine_tuned", str(embedder_run)))}
    rows = {"bm25": measured(rankings_of(bm25, held_out, doc_ids, depth))}
    weights = {}
    by_weight = {}
    for name, scores in dense.items():
        rows[f"dense_{name}"] = measured(rankings_of(scores, held_out, doc_ids, depth))
        chosen = stored_hybrid_weight(embedder_run, "run" if name == "fine_tuned" else "base")
        weights[f"hybrid_{name}"] = chosen
        rows[f"hybrid_{name}_rule"] = measured(rankings_of(hybrid_scores(bm25, scores, chosen), held_out, doc_ids, depth))
        # Every weight of the grid, so the summary can choose one on the other folds (the pooled rule).
        by_weight[name] = {f"{weight:.1f}": measured(rankings_of(hybrid_scores(bm25, scores, weight), held_out,
                                                                 doc_ids, depth)) for weight in GRID}
        for weight in FIXED_WEIGHTS:
            rows[f"hybrid_{name}_w{weight}"] = by_weight[name][f"{weight:.1f}"]
    # The reranker behind the fine-tuned hybrid at the rule's weight, top 20, as main.py --retriever hybrid ranks.
    first_stage = hybrid_scores(bm25, dense["fine_tuned"], weights["hybrid_fine_tuned"])
    positions, top_scores = select_top_k(first_stage, 20)
    candidates = Candidates(ids={q.qid: [doc_ids[p] for p in row] for q, row in zip(held_out, positions)},
                            first_stage_scores={q.qid: row for q, row in zip(held_out, top_scores)})
    reranker = Reranker(model_name=str(reranker_run), max_length=run_max_length(reranker_run), batch_size=32)
    scores = rerank_scores(reranker.compute_score, held_out, candidates, corpus)
    rows["reranked"] = measured(rank(scores, candidates))
    fusion = stored_fusion(reranker_run)
    if fusion is not None:
        method, weight = fusion
        weights["fused"] = f"{method}:{weight:.1f}"
        rows["fused"] = measured(rank(fused_scores(candidates, scores, weight, method), candidates))
    return {"rows": rows, "weights": weights, "by_weight": by_weight}


def run_max_length(run_dir: Path) -> int:
    info = json.loads((run_dir / "training_info.json").read_text())
    return int(info["base_model"]["max_length"])


def run_fold(fold: int, train_queries, held_out, corpus, settings, workdir: Path) -> dict:
    fold_dir = workdir / f"fold-{fold}"
    result_path = fold_dir / "held_out.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    fold_dir.mkdir(parents=True, exist_ok=True)
    train_xlsx = fold_dir / "train.xlsx"
    write_queries(train_queries, train_xlsx)
    common = ["--corpus_csv", str(settings.corpus_csv), "--train_xlsx", str(train_xlsx), "--base_model",
              settings.base_model, "--runs_root", str(fold_dir)]
    times = {}
    embedder_run = newest_finished_run(fold_dir, EMBEDDER_PREFIX)
    if embedder_run is None:
        times["embedder_s"] = train("fine_tune_embedder.py", common + settings.embedder_flags,
                                    fold_dir / "embedder.log")
        embedder_run = newest_finished_run(fold_dir, EMBEDDER_PREFIX)
    reranker_run = newest_finished_run(fold_dir, RUN_PREFIX)
    if reranker_run is None:
        times["reranker_s"] = train("fine_tune_reranker.py", common + ["--hard_neg_method", "hybrid",
                                    "--embedding_model", str(embedder_run), *settings.reranker_flags],
                                    fold_dir / "reranker.log")
        reranker_run = newest_finished_run(fold_dir, RUN_PREFIX)
    evaluated = evaluate_fold(corpus, held_out, settings.base_model, embedder_run, reranker_run)
    result = {"fold": fold, "queries": len(held_out), "times": times, **evaluated}
    result_path.write_text(json.dumps(result))
    return result


def add_pooled_rule(results: list[dict]) -> None:
    """Each fold's hybrid at the weight the kit's guarded rule picks on the *other* folds' held-out queries, pooled."""
    from reranker_kit.fusion import choose_fusion

    for name in ("base", "fine_tuned"):
        for fold in results:
            others = [other for other in results if other is not fold]
            pooled = {f"minmax:{key}": {f"{other['fold']}/{qid}": values for other in others
                                        for qid, values in other["by_weight"][name][key].items()}
                      for key in fold["by_weight"][name]}
            choice = choose_fusion(pooled, "mrr@5", ks=(3, 5, 7))
            fold["weights"][f"hybrid_{name}_pooled"] = choice.weight
            fold["rows"][f"hybrid_{name}_pooled"] = fold["by_weight"][name][f"{choice.weight:.1f}"]


def add_unshrunk_rule(results: list[dict], workdir: Path) -> None:
    """Each fold's hybrid at the best weight under the guard on the fold's own dev queries, before any shrinking
    (hybrid.json's `best_before_shrinking`): the rule without the shrinkage toward BM25."""
    for fold in results:
        embedder_run = newest_finished_run(workdir / f"fold-{fold['fold']}", EMBEDDER_PREFIX)
        best = json.loads((embedder_run / HYBRID_FILE).read_text())["best_before_shrinking"]
        for name, encoder in (("base", "base"), ("fine_tuned", "run")):
            _, weight = parse_setting(best[encoder])
            fold["weights"][f"hybrid_{name}_unshrunk"] = weight
            fold["rows"][f"hybrid_{name}_unshrunk"] = fold["by_weight"][name][f"{weight:.1f}"]


def summarize(results: list[dict]) -> str:
    add_pooled_rule(results)
    rows = list(results[0]["rows"])
    lines = ["| row | " + " | ".join(f"{m} mean ± sd over folds" for m in SHOWN) + " | mrr@3 − BM25 [95% CI] p | "
             "hit@3 − BM25 [95% CI] p | worst fold hit@3 − BM25 (queries) |",
             "|---" * (len(SHOWN) + 4) + "|"]
    for row in rows:
        cells = []
        for metric in SHOWN:
            per_fold = [statistics.fmean(v[metric] for v in fold["rows"][row].values()) for fold in results]
            cells.append(f"{statistics.fmean(per_fold):.3f} ± {statistics.stdev(per_fold):.3f}")
        for metric in ("mrr@3", "hit@3"):
            a = [v[metric] for fold in results for v in fold["rows"][row].values()]
            b = [v[metric] for fold in results for v in fold["rows"]["bm25"].values()]
            comparison = compare_paired(a, b)
            cells.append(f"{comparison.mean_difference:+.3f} [{comparison.ci_low:+.3f}, {comparison.ci_high:+.3f}] "
                         f"p {comparison.p_value:.3f}")
        worst = min(sum(v["hit@3"] for v in fold["rows"][row].values()) - sum(v["hit@3"] for v in fold["rows"]["bm25"].values())
                    for fold in results)
        cells.append(f"{worst:+.0f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    weights = "; ".join(f"fold {fold['fold']}: " + ", ".join(f"{k} {v}" for k, v in fold["weights"].items())
                        for fold in results)
    times = "; ".join(f"fold {fold['fold']}: " + ", ".join(f"{k} {v:.0f}" for k, v in fold["times"].items())
                      for fold in results)
    queries = sum(fold["queries"] for fold in results)
    return "\n".join(lines) + f"\n\nPooled over {queries} held-out queries. Weights: {weights}.\nTimes: {times}.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_model", default="bundled-e5", help="Base of both stages.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/two-stage"), help="Where folds are trained.")
    parser.add_argument("--corpus_csv", type=Path, default=REPOSITORY / "CLB_PROPTIT.csv")
    parser.add_argument("--train_xlsx", type=Path, default=REPOSITORY / "train_data_proptit.xlsx")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--embedder_flags", nargs=argparse.REMAINDER, default=[],
                        help="Extra flags for fine_tune_embedder.py (last on the command line).")
    settings = parser.parse_args()
    settings.reranker_flags = []
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    corpus = load_corpus(settings.corpus_csv)
    queries = merge_duplicate_queries(load_queries(settings.train_xlsx, corpus))
    settings.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for fold, (train_queries, held_out) in enumerate(fold_splits(queries, settings.folds, settings.seed), start=1):
        logger.info("fold %d: %d training, %d held-out queries", fold, len(train_queries), len(held_out))
        results.append(run_fold(fold, train_queries, held_out, corpus, settings, settings.workdir))
    add_unshrunk_rule(results, settings.workdir)
    report = summarize(results)
    (settings.workdir / "two_stage_cv.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
