"""The evaluation stage of bench/shift_experiment.py: each run's fusion choices, scored on the other side.

For every finished run it reproduces the run's dev split, scores the dev and the evaluation queries' BM25
top 20 with the fine-tuned model, chooses a fusion on the dev queries by each rule, and reports, on the
evaluation side, the first stage, the fine-tuned model and every rule's fused ranking.
"""

import pickle
import statistics
from pathlib import Path

from reranker_kit.data.loading import load_corpus, load_queries
from reranker_kit.data.splits import merge_duplicate_queries, split_queries
from reranker_kit.fusion import (
    FUSION_METHODS,
    PRIOR_QUERIES,
    choose_fusion,
    fused_scores,
    parse_setting,
    per_query_by_setting,
    setting_key,
)
from reranker_kit.metrics import evaluate_rankings
from reranker_kit.pipeline import rank, rerank_scores
from reranker_kit.retrieval import LexicalIndex
from reranker_kit.retrieval.candidates import retrieve_candidates
from reranker_kit.run_folder import newest_finished_run, read_run_info
from reranker_kit.testing import SAMPLE_CORPUS_CSV

METRIC = "mrr@5"
REPORTED = ("hit@3", "mrr@3", "hit@5", "mrr@5")
# rule name: (methods allowed, shrink toward the first stage, prior queries of the evidence shrinkage)
RULES = {"old: min-max, best on dev": (("minmax",), False, 0),
         "any method, best on dev": (FUSION_METHODS, False, 0),
         "any method, 1 SE only": (FUSION_METHODS, True, 0),
         "new default: any method, 1 SE + evidence": (FUSION_METHODS, True, PRIOR_QUERIES)}


def run_scores(run_dir: Path, train_file: Path, eval_file: Path, seed: int):
    """(corpus, dev and eval candidates, reranker scores and relevance) for one finished run."""
    from reranker_kit.models.reranker import Reranker

    corpus = load_corpus(SAMPLE_CORPUS_CSV)
    _, dev = split_queries(merge_duplicate_queries(load_queries(train_file, corpus)), 0.2, seed)
    evaluated = merge_duplicate_queries(load_queries(eval_file, corpus))
    doc_ids = list(corpus)
    index = LexicalIndex([corpus[i] for i in doc_ids])
    reranker = Reranker(model_name=str(run_dir), max_length=read_run_info(run_dir)["base_model"]["max_length"],
                        batch_size=64)
    sides = {}
    for name, queries in (("dev", dev), ("eval", evaluated)):
        candidates = retrieve_candidates(index, doc_ids, queries, 20)
        scores = rerank_scores(reranker.compute_score, queries, candidates, corpus)
        sides[name] = (candidates, scores, {query.qid: query.relevant_ids for query in queries})
    return sides


def evaluate_run(sides: dict) -> dict[str, dict]:
    """{ranker: {"metrics": ..., "setting": ..., "dev": ...}}: the evaluation side's metrics, and for the
    rules also the metrics of their setting on the dev queries they chose it on (in-sample)."""
    dev_candidates, dev_scores, dev_relevant = sides["dev"]
    by_setting = per_query_by_setting(dev_candidates, dev_scores, dev_relevant)
    candidates, scores, relevant = sides["eval"]

    def metrics(ranking_scores):
        return evaluate_rankings(rank(ranking_scores, candidates), relevant, metrics=("hit", "mrr"))

    rows = {"first stage (BM25)": {"metrics": metrics(candidates.first_stage_scores), "setting": "-"},
            "fine-tuned alone": {"metrics": metrics(scores), "setting": "-"}}
    # What any one setting could have reached on the evaluation side: the ceiling of every rule, not a rule.
    hindsight = per_query_by_setting(candidates, scores, relevant)
    best = max(hindsight, key=lambda key: (statistics.fmean(row[METRIC] for row in hindsight[key].values()),
                                           -parse_setting(key)[1]))
    rows["fused, best setting in hindsight"] = {"metrics": metrics(fused_scores(candidates, scores,
                                                                                parse_setting(best)[1],
                                                                                parse_setting(best)[0])),
                                                "setting": best}
    for rule, (methods, shrink, prior) in RULES.items():
        allowed = {key: value for key, value in by_setting.items() if parse_setting(key)[0] in methods}
        choice = choose_fusion(allowed, METRIC, shrink=shrink, prior_queries=prior)
        rows[f"fused, {rule}"] = {"metrics": metrics(fused_scores(candidates, scores, choice.weight, choice.method)),
                                  "setting": setting_key(choice.method, choice.weight),
                                  "dev": choice.fused_dev_metrics}
    rows["first stage (BM25)"]["dev"] = choice.dev_metrics_by_setting[setting_key("minmax", 0.0)]
    return rows


def evaluate(workdir: Path, files: dict[str, tuple[Path, Path]], seeds: list[int]) -> None:
    for direction, (train_file, eval_file) in files.items():
        per_seed = []
        for seed in seeds:
            run_dir = newest_finished_run(workdir / f"{direction}-seed{seed}")
            if run_dir is None:
                print(f"{direction} seed {seed}: no finished run, skipped")
                continue
            # Scores are kept beside the runs, so the rules can be compared again without the model.
            cache = workdir / f"{direction}-seed{seed}.scores.pkl"
            if not cache.is_file():
                cache.write_bytes(pickle.dumps(run_scores(run_dir, train_file, eval_file, seed)))
            per_seed.append(evaluate_run(pickle.loads(cache.read_bytes())))
        if per_seed:
            print_table(direction, per_seed, seeds)


def print_table(direction: str, per_seed: list[dict], seeds: list[int]) -> None:
    used = seeds[:len(per_seed)]
    for side, title in (("metrics", "the evaluation side"), ("dev", "the dev queries each rule chose on, in-sample")):
        print(f"\n### {direction}: {title} ({len(per_seed)} seeds: {used}; mean ± std)\n")
        print("| ranker | settings chosen | " + " | ".join(REPORTED) + " |")
        print("|---|---|" + "---|" * len(REPORTED))
        for ranker in (name for name in per_seed[0] if per_seed[0][name].get(side)):
            cells = []
            for name in REPORTED:
                values = [run[ranker][side][name] for run in per_seed]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.fmean(values):.3f} ± {spread:.3f}")
            settings = ", ".join(run[ranker]["setting"] for run in per_seed)
            print(f"| {ranker} | {settings} | " + " | ".join(cells) + " |")
