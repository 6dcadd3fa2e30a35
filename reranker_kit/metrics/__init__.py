"""The club's benchmark metrics, the cut-offs it reports them at, and the ones that rank checkpoints."""

from reranker_kit.metrics.context_recall import SUPPORT_THRESHOLD, answer_can_be_judged, context_recall_at_k
from reranker_kit.metrics.conventions import CUTOFFS, DEV_RANKING_METRICS
from reranker_kit.metrics.paired import (
                                         PairedComparison,
                                         compare_metric_tables,
                                         compare_paired,
                                         format_comparison,
                                         one_standard_error_choice,
)
from reranker_kit.metrics.ranking import (
                                          METRIC_NAMES,
                                          context_precision_at_k,
                                          evaluate_rankings,
                                          f1_score,
                                          hit_at_k,
                                          map_at_k,
                                          mrr_at_k,
                                          ndcg_at_k,
                                          per_query_metrics,
                                          precision_at_k,
                                          recall_at_k,
)

__all__ = ["CUTOFFS", "DEV_RANKING_METRICS", "METRIC_NAMES", "SUPPORT_THRESHOLD", "PairedComparison",
           "answer_can_be_judged", "compare_metric_tables", "compare_paired", "context_precision_at_k", "context_recall_at_k",
           "evaluate_rankings", "f1_score", "format_comparison", "hit_at_k", "map_at_k", "mrr_at_k", "ndcg_at_k",
           "one_standard_error_choice", "per_query_metrics", "precision_at_k", "recall_at_k"]
