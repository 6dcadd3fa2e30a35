"""Evaluating a model on the held-out dev queries exactly as main.py evaluates it."""

from collections.abc import Sequence

import numpy as np

from reranker_kit.basics.scores import sigmoid
from reranker_kit.data.loading import Query
from reranker_kit.finetune.negatives import TrainingGroup
from reranker_kit.fusion import FusionChoice, choose_fusion, per_query_by_setting
from reranker_kit.metrics import CUTOFFS, DEV_RANKING_METRICS, evaluate_rankings, per_query_metrics
from reranker_kit.metrics.paired import per_query_columns
from reranker_kit.models.pair_encoding import score_pairs
from reranker_kit.pipeline import rank, rerank_scores
from reranker_kit.retrieval.candidates import Candidates


class DevEvaluator:
    """Pair metrics and ranking metrics of a model on the held-out dev queries.

    Ranking: each dev query's candidates are the first stage's top `--dev_top_n` documents (retrieved
    before training, `training/mining.py`), reranked by the model, exactly as `main.py` will use it; a
    relevant document the first stage missed counts as missed.
    Pair metrics (the seed guide's): accuracy at 0.5 after a sigmoid, mean sigmoid score of positive and
    of negative pairs, and their difference (margin), over the dev queries' mined pairs.
    """

    def __init__(self, dev_queries: Sequence[Query], dev_groups: Sequence[TrainingGroup], corpus: dict[int, str],
                 candidates: Candidates, tokenizer, max_length: int, batch_size: int, ks: Sequence[int] = CUTOFFS,
                 show_progress_bar: bool = False):
        self.queries, self.corpus = list(dev_queries), corpus
        self.show_progress_bar = show_progress_bar
        self.tokenizer, self.max_length, self.batch_size, self.ks = tokenizer, max_length, batch_size, tuple(ks)
        self.relevant = {query.qid: query.relevant_ids for query in dev_queries}
        self.candidates = candidates
        self.labelled_pairs, labels = [], []
        for group in dev_groups:
            self.labelled_pairs += [(group.query, corpus[doc_id]) for doc_id in (group.positive_id, *group.negative_ids)]
            labels += [1.0] + [0.0] * len(group.negative_ids)
        self.labels = np.asarray(labels)

    def ranking_metrics(self, scores_by_query: dict[str, np.ndarray]) -> dict[str, float]:
        return evaluate_rankings(rank(scores_by_query, self.candidates), self.relevant, self.ks, metrics=DEV_RANKING_METRICS)

    def per_query(self, scores_by_query: dict[str, np.ndarray]) -> dict[str, list[float]]:
        """{metric: per-query values in dev-query order}: the input of the paired statistics."""
        per_query = per_query_metrics(rank(scores_by_query, self.candidates), self.relevant, self.ks,
                                      metrics=DEV_RANKING_METRICS)
        return per_query_columns(per_query, [query.qid for query in self.queries])

    def model_per_query(self, model) -> dict[str, list[float]]:
        return self.per_query(self.candidate_scores(model))

    def first_stage_metrics(self) -> dict[str, float]:
        return self.ranking_metrics(self.candidates.first_stage_scores)

    def candidate_scores(self, model) -> dict[str, np.ndarray]:
        """The model's score of each dev query's candidates, in candidate order."""
        return rerank_scores(self._scorer(model), self.queries, self.candidates, self.corpus)

    def __call__(self, model) -> dict[str, float]:
        return self._metrics(model, self.candidate_scores(model))

    def evaluate_with_fusion(self, model, metric: str, reranker: dict[str, np.ndarray] | None = None
                             ) -> tuple[dict[str, float], FusionChoice]:
        """The final metrics and the fusion chosen on dev (`fusion.choose_fusion`), from one scoring.

        `reranker`: the model's candidate scores when already computed.
        """
        reranker = self.candidate_scores(model) if reranker is None else reranker
        by_setting = per_query_by_setting(self.candidates, reranker, self.relevant, self.ks, DEV_RANKING_METRICS)
        return self._metrics(model, reranker), choose_fusion(by_setting, metric, self.ks)

    def _metrics(self, model, candidate_scores: dict[str, np.ndarray]) -> dict[str, float]:
        probabilities = sigmoid(self._scorer(model)(self.labelled_pairs))
        positive, negative = probabilities[self.labels == 1.0], probabilities[self.labels == 0.0]
        metrics = {
            "accuracy": float(np.mean((probabilities >= 0.5) == (self.labels == 1.0))),
            "avg_pos_score": float(positive.mean()) if positive.size else 0.0,
            "avg_neg_score": float(negative.mean()) if negative.size else 0.0,
        }
        metrics["margin"] = metrics["avg_pos_score"] - metrics["avg_neg_score"]
        metrics.update(self.ranking_metrics(candidate_scores))
        return metrics

    def _scorer(self, model):
        return lambda pairs: score_pairs(model, self.tokenizer, pairs, self.max_length, self.batch_size,
                                         self.show_progress_bar, description="dev evaluation")
