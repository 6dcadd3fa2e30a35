"""The files an embedder run leaves beside its sentence-transformers model folder.

dev_metrics.json (the base and the fine-tuned encoder as first stages on the dev queries, and the
verdict), hybrid.json (the hybrid's dense weight chosen on them), training_curves.png, README.md (the
model card), then training_info.json last through run_folder.write_completion_marker.
"""

import time
from pathlib import Path

from reranker_kit.basics.files import write_json_atomic
from reranker_kit.embedder.config import EmbedderSettings
from reranker_kit.embedder.dev_evaluation import HYBRID_FUSION
from reranker_kit.embedder.result import BASE_KEPT, EmbedderResult
from reranker_kit.run_folder import DEV_METRICS_FILE, write_completion_marker, write_hybrid_choice
from reranker_kit.training.outputs import library_versions


def dev_metrics_payload(result: EmbedderResult) -> dict:
    """The saved encoder's dense metrics at the top level; the base, the fine-tuned, BM25 and the verdict beside."""
    if result.dev is None:
        return {"verdict": result.verdict}
    dev = result.dev
    return {**dev.saved.dense, "metric_for_best_model": dev.metric_for_best_model, "verdict": dev.verdict,
            "saved_encoder": "base" if dev.verdict == BASE_KEPT else "fine_tuned",
            "base": dev.base.as_dict(), "fine_tuned": dev.fine_tuned.as_dict(), "bm25": dev.base.bm25,
            "queries": dev.base.hybrid.queries}


def hybrid_payload(result: EmbedderResult) -> dict:
    """hybrid.json: the dense weight for the saved encoder ("run") and for the base, with the evidence."""
    dev = result.dev
    saved, base = dev.saved.hybrid, dev.base.hybrid
    return {"fusion": HYBRID_FUSION, "dense_weight": {"run": saved.weight, "base": base.weight},
            "metric": saved.metric, "rule": saved.rule, "queries": saved.queries,
            "best_before_shrinking": {"run": saved.best_setting, "base": base.best_setting},
            "dev_metrics": {"run": saved.fused_dev_metrics, "base": base.fused_dev_metrics}}


def write_finished_embedder_run(run_dir: Path, settings: EmbedderSettings, result: EmbedderResult, counts: dict,
                                started: float) -> dict:
    """Writes the run's metrics, hybrid weight, curves and model card, then training_info.json last."""
    from reranker_kit.embedder.model_card import write_embedder_model_card
    from reranker_kit.reports.plots import plot_training_curves

    dev_metrics = dev_metrics_payload(result)
    write_json_atomic(run_dir / DEV_METRICS_FILE, dev_metrics)
    write_json_atomic(run_dir / "train_results.json", result.train_metrics)
    if result.dev is not None:
        write_hybrid_choice(run_dir, hybrid_payload(result))
    metric = settings.evaluation.metric_for_best_model
    plot_training_curves(result.log_history, result.dev.base.dense if result.dev else None, metric,
                         run_dir / "training_curves.png", title="Embedder fine-tuning")
    info = {
        "kind": "embedder",
        "arguments": settings.as_dict(),
        "base_model": result.base_model,
        "data": counts,
        # Absolute, so main.py can find the labelled queries again from any folder.
        "train_xlsx": str(Path(settings.data.train_xlsx).resolve()),
        "verdict": result.verdict,
        "best_checkpoint": result.best_checkpoint,
        "library_versions": library_versions(),
        "device": result.device,
        "wall_time_s": time.time() - started,
        "final_step": result.final_step,
        "peak_memory_gib": result.peak_memory_gib,
    }
    write_embedder_model_card(run_dir / "README.md", info, dev_metrics)
    return write_completion_marker(run_dir, info)
