"""main.py's paired comparisons: on each query file, what the fine-tuned reranker gained over its base and
over the first stage, and what fusion gained over the first stage, each with a 95% paired bootstrap
interval, a paired randomization p-value and the number of queries (`metrics.paired`).

On 30 queries one query moves hit@k by 0.033; a difference whose interval covers 0 is not a gain.
"""

from reranker_kit.metrics import per_query_metrics
from reranker_kit.metrics.paired import compare_rankers, per_query_columns

COMPARED_METRICS = ("hit", "mrr", "ndcg")


def comparison_pairs(rankers: list[str]) -> list[tuple[str, str]]:
    """The pairs main.py reports, among the rankers it scored (the fused row's name carries its setting).

    Beside another first stage, BM25 (the club's reference) is a baseline of the first stage and what follows it.
    """
    fused = [name for name in rankers if name.startswith("fused_")]
    wanted = [("fine_tuned", "pretrained"), ("fine_tuned", "first_stage")] + [(name, "first_stage") for name in fused]
    wanted += [("first_stage", "bm25"), ("fine_tuned", "bm25")] + [(name, "bm25") for name in fused]
    return [(a, b) for a, b in wanted if a in rankers and b in rankers]


def ranker_comparisons(rankings: dict, datasets: dict, ks) -> list[dict]:
    """Rows {dataset, a, b, metric, and PairedComparison's fields} for every file and pair."""
    rows = []
    for dataset, queries in datasets.items():
        qids = [query.qid for query in queries]
        relevant = {query.qid: query.relevant_ids for query in queries}
        rankers = [name for name, data in rankings if data == dataset]
        per_query = {name: per_query_columns(per_query_metrics(rankings[name, dataset], relevant, ks,
                                                               metrics=COMPARED_METRICS), qids)
                     for name in rankers}
        for pair, by_metric in compare_rankers(per_query, comparison_pairs(rankers)).items():
            a, b = pair.split("_vs_")
            rows += [{"dataset": dataset, "a": a, "b": b, "metric": metric, **comparison.as_json()}
                     for metric, comparison in by_metric.items()]
    return rows
