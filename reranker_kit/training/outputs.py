"""What a finished reranker run writes into its folder: dev metrics and the verdict, the fusion choice, the
curves, the model card, then training_info.json last through `finetune.outputs.finish_run`.
"""

from pathlib import Path

from reranker_kit.basics.files import read_json_object, write_json_atomic
from reranker_kit.finetune.outputs import run_info
from reranker_kit.finetune.verdict import NO_DEV, NOT_JUDGED, Verdict
from reranker_kit.metrics.paired import compare_rankers, comparisons_as_json
from reranker_kit.retrieval.first_stage import describe_candidates
from reranker_kit.run_folder import DEV_METRICS_FILE, FUSION_FILE, write_completion_marker
from reranker_kit.training.arguments import RerankerSettings
from reranker_kit.training.model_card import CardFacts, write_model_card
from reranker_kit.training.result import DataSummary, TrainingResult

# The pretrained model's dev metrics, kept so a resumed run does not score them again.
BASELINE_FILE = "baseline_dev_metrics.json"


def read_baseline(run_dir: Path) -> dict | None:
    return read_json_object(run_dir / BASELINE_FILE)


def write_baseline(run_dir: Path, metrics: dict) -> None:
    write_json_atomic(run_dir / BASELINE_FILE, metrics)


def run_verdict(result: TrainingResult, in_fold: bool) -> Verdict:
    if result.model_choice is not None:
        return result.model_choice.verdict
    return Verdict(NOT_JUDGED if in_fold else NO_DEV, "fine-tuned")


def dev_metrics_payload(result: TrainingResult, verdict: Verdict) -> dict:
    """dev_metrics.json: the saved model's metrics at the top level, the other rankers beside them, the
    verdict against the base, and each comparison's paired interval and p-value."""
    if result.dev is None:
        return verdict.as_json()
    return {**result.dev.fine_tuned, "baseline": result.dev.pretrained,
            "metric_for_best_model": result.dev.metric_for_best_model, "first_stage": result.dev.first_stage,
            "fused": result.dev.fused, "comparisons": comparisons_as_json(compare_rankers(result.dev.per_query)),
            **verdict.as_json()}


def write_finished_run(run_dir: Path, settings: RerankerSettings, result: TrainingResult, data: DataSummary,
                       started: float, in_fold: bool) -> dict:
    """Writes the run's metrics, curves and model card, then `training_info.json` last; returns that info."""
    from reranker_kit.reports.plots import plot_training_curves  # Defers matplotlib to the end of a run.

    verdict = run_verdict(result, in_fold)
    dev_metrics = dev_metrics_payload(result, verdict)
    write_json_atomic(run_dir / DEV_METRICS_FILE, dev_metrics)
    write_json_atomic(run_dir / "train_results.json", result.train_metrics)
    if result.fusion:
        write_json_atomic(run_dir / FUSION_FILE, {**result.fusion.as_json(),
                                                  **dev_candidates_description(settings, data.dev_candidates_from_file)})
    plot_training_curves(result.log_history, dev_metrics.get("baseline"), settings.evaluation.metric_for_best_model,
                         run_dir / "training_curves.png")
    specific = {
        "base_model": result.base_model, "data": data.as_dict(), "pairs": data.train_pairs,
        "best_checkpoint": result.best_checkpoint, "device": result.device, "processes": result.world_size,
        "final_step": result.final_step, "peak_memory_gib": result.peak_memory_gib, "verdict": verdict.verdict,
        # Base, trained or blended weights: the choice and every candidate's dev metrics.
        "weights": result.model_choice.as_json() if result.model_choice else None,
    }
    info = run_info(run_dir, settings, "reranker", started, specific)
    write_model_card(run_dir / "README.md", info, dev_metrics, card_facts(settings))
    return write_completion_marker(run_dir, info)


def dev_candidates_description(settings: RerankerSettings, from_file: bool) -> dict:
    """What produced the dev candidates the fusion was chosen on (fusion.json), from the run's own settings.

    `from_file`: whether any dev query's candidates came from `candidates` (the others used `hard_neg_method`).
    """
    negatives = settings.negatives
    return describe_candidates(negatives.hard_neg_method, settings.evaluation.dev_top_n, negatives.expand_documents,
                               negatives.embedding_model, from_file=from_file)


def card_facts(settings: RerankerSettings) -> CardFacts:
    return CardFacts(corpus_file=Path(settings.data.corpus_csv).name, train_file=Path(settings.data.train_xlsx).name,
                     dev_top_n=settings.evaluation.dev_top_n, augment_with_answers=settings.data.augment_with_answers,
                     pseudo_queries_per_document=settings.data.pseudo_queries_per_document,
                     settings=settings.card_settings(), hub_model_id=settings.output.hub_model_id,
                     hub_dataset_id=settings.output.hub_dataset_id)
