"""The files an embedder run leaves beside its sentence-transformers model folder.

dev_metrics.json (the base and the fine-tuned encoder as first stages on the dev queries, and the
verdict), hybrid.json (the hybrid's dense weight chosen on them), training_curves.png, README.md (the
model card), then training_info.json last.
"""

import shutil
from pathlib import Path

from reranker_kit.basics.files import write_json_atomic
from reranker_kit.embedder.arguments import EmbedderSettings
from reranker_kit.embedder.dev_evaluation import HYBRID_FUSION
from reranker_kit.embedder.result import EmbedderResult
from reranker_kit.finetune.outputs import run_info
from reranker_kit.run_folder import DEV_METRICS_FILE, write_completion_marker, write_hybrid_choice


def dev_metrics_payload(result: EmbedderResult) -> dict:
    """The saved encoder's dense metrics at the top level; the base, the fine-tuned, BM25 and the verdict beside."""
    if result.dev is None:
        return result.verdict.as_json()
    dev = result.dev
    return {**dev.saved(result.verdict).dense, "metric_for_best_model": dev.metric_for_best_model,
            **result.verdict.as_json(), "base": dev.base.as_dict(), "fine_tuned": dev.fine_tuned.as_dict(),
            "bm25": dev.base.bm25, "queries": dev.base.hybrid.queries}


def hybrid_payload(result: EmbedderResult) -> dict:
    """hybrid.json: the dense weight for the saved encoder ("run") and for the base, with the evidence."""
    dev = result.dev
    saved, base = dev.saved(result.verdict).hybrid, dev.base.hybrid
    return {"fusion": HYBRID_FUSION, "dense_weight": {"run": saved.weight, "base": base.weight},
            "metric": saved.metric, "rule": saved.rule, "queries": saved.queries,
            "best_before_shrinking": {"run": saved.best_setting, "base": base.best_setting},
            "dev_metrics": {"run": saved.fused_dev_metrics, "base": base.fused_dev_metrics}}


def write_finished_embedder_run(run_dir: Path, settings: EmbedderSettings, result: EmbedderResult, counts: dict,
                                started: float) -> dict:
    """Writes the run's metrics, hybrid weight, curves and model card, then training_info.json last."""
    from reranker_kit.embedder.model_card import write_embedder_model_card
    from reranker_kit.reports.plots import plot_training_curves  # Defers matplotlib to the end of a run.

    dev_metrics = dev_metrics_payload(result)
    write_json_atomic(run_dir / DEV_METRICS_FILE, dev_metrics)
    write_json_atomic(run_dir / "train_results.json", result.train_metrics)
    if result.dev is not None:
        write_hybrid_choice(run_dir, hybrid_payload(result))
    metric = settings.evaluation.metric_for_best_model
    plot_training_curves(result.log_history, result.dev.base.dense if result.dev else None, metric,
                         run_dir / "training_curves.png", title="Embedder fine-tuning")
    evaluator_folder = run_dir / "eval"  # sentence-transformers makes it for evaluators that write; ours does not.
    if evaluator_folder.is_dir() and not any(evaluator_folder.iterdir()):
        shutil.rmtree(evaluator_folder)
    specific = {"base_model": result.base_model, "data": counts, "verdict": result.verdict.verdict,
                "saved_weights": result.verdict.saved, "best_checkpoint": result.best_checkpoint,
                "device": result.device, "final_step": result.final_step, "peak_memory_gib": result.peak_memory_gib}
    info = run_info(run_dir, settings, "embedder", started, specific)
    write_embedder_model_card(run_dir / "README.md", info, dev_metrics)
    return write_completion_marker(run_dir, info)
