"""Fusing first-stage and reranker scores, and choosing how much to trust the reranker.

Weight 0 is the first stage alone and weight 1 the reranker alone; the weight a training run chooses
on its held-out queries is stored in the run folder (`run_folder.FUSION_FILE`) and applied by main.py.
"""

from collections.abc import Sequence

import numpy as np

from reranker_kit.metrics import CUTOFFS
from reranker_kit.pipeline import Candidates

FUSION_WEIGHTS = tuple(step / 10 for step in range(11))
# A fusion weight must keep these at least at the first stage's, at every cut-off.
GUARDED_METRICS = ("hit", "mrr")


def fuse(first_stage: np.ndarray, reranker: np.ndarray, weight: float) -> np.ndarray:
    """weight * reranker + (1 - weight) * first stage, each min-max normalised within the query.

    Per-query normalisation puts BM25 scores (unbounded, query-dependent) and logits on one scale;
    weight 1 is the reranker alone, weight 0 the first stage alone.
    """
    return weight * _min_max(reranker) + (1.0 - weight) * _min_max(first_stage)


def fused_scores(candidates: Candidates, reranker_scores: dict[str, np.ndarray], weight: float
                 ) -> dict[str, np.ndarray]:
    return {qid: fuse(candidates.first_stage_scores[qid], reranker_scores[qid], weight) for qid in candidates.ids}


def choose_fusion_weight(metrics_by_weight: dict[str, dict[str, float]], metric: str,
                         ks: Sequence[int] = CUTOFFS) -> str:
    """The weight (a key such as "0.3") with the best `metric` among those no worse than the first stage.

    "No worse" means hit@k and mrr@k at every k at least those of weight 0 (the first stage alone), so a
    weak reranker cannot trade the top hit for a better average. Ties go to the smaller weight.
    """
    first_stage = metrics_by_weight["0.0"]
    guarded = [f"{name}@{k}" for name in GUARDED_METRICS for k in ks]
    safe = [weight for weight, metrics in metrics_by_weight.items()
            if all(metrics[key] >= first_stage[key] - 1e-12 for key in guarded)]
    return max(safe, key=lambda weight: (metrics_by_weight[weight][metric], -float(weight)))


def _min_max(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    spread = values.max() - values.min()
    return (values - values.min()) / spread if spread > 0 else np.zeros_like(values)
