"""What a finished training run writes into its folder: dev metrics, fusion choice, curves, the model card,
then `training_info.json` last (the completion marker `run_folder` looks for).
"""

import json
import platform
import time
from pathlib import Path

from reranker_kit.basics.files import write_json_atomic
from reranker_kit.metrics.paired import compare_rankers, comparisons_as_json
from reranker_kit.reports.model_card import CardFacts, write_model_card
from reranker_kit.retrieval.first_stage import describe_candidates
from reranker_kit.run_folder import DEV_METRICS_FILE, FUSION_FILE, write_completion_marker
from reranker_kit.training.config import TrainingConfig
from reranker_kit.training.result import DataSummary, TrainingResult
from reranker_kit.training.starts import read_starts

# Settings shown in the model card: the flags that shape the model (paths are left out on purpose).
CARD_FLAGS = ("loss", "epochs", "max_steps", "lr", "warmup_ratio", "weight_decay", "batch_size",
              "gradient_accumulation_steps", "max_seq_length", "freeze_word_embeddings", "num_hard_negatives",
              "num_random_negatives", "hard_neg_method", "hard_neg_top_k", "augment_with_answers",
              "pseudo_queries_per_document", "dev_ratio", "metric_for_best_model", "fp16", "bf16", "seed")
# The pretrained model's dev metrics, kept so a resumed run does not score them again.
BASELINE_FILE = "baseline_dev_metrics.json"


def read_baseline(run_dir: Path) -> dict | None:
    path = run_dir / BASELINE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_baseline(run_dir: Path, metrics: dict) -> None:
    write_json_atomic(run_dir / BASELINE_FILE, metrics)


def dev_metrics_payload(result: TrainingResult) -> dict:
    """dev_metrics.json: the saved model's metrics at the top level, the other rankers beside them, the
    verdict against the base, and each comparison's paired interval and p-value."""
    if result.dev is None:
        return {}
    payload = {**result.dev.fine_tuned, "baseline": result.dev.pretrained,
               "metric_for_best_model": result.dev.metric_for_best_model, "first_stage": result.dev.first_stage,
               "fused": result.dev.fused,
               "comparisons": comparisons_as_json(compare_rankers(result.dev.per_query))}
    if result.model_choice is not None:
        payload.update(verdict=result.model_choice.verdict, saved_weights=result.model_choice.label,
                       trained_vs_base=result.model_choice.trained_vs_base)
    return payload


def write_finished_run(run_dir: Path, config: TrainingConfig, result: TrainingResult, data: DataSummary,
                       started: float) -> dict:
    """Writes the run's metrics, curves and model card, then `training_info.json` last; returns that info."""
    from reranker_kit.reports.plots import plot_training_curves  # Defers matplotlib to the end of a run.

    dev_metrics = dev_metrics_payload(result)
    write_json_atomic(run_dir / DEV_METRICS_FILE, dev_metrics)
    write_json_atomic(run_dir / "train_results.json", result.train_metrics)
    if result.fusion:
        write_json_atomic(run_dir / FUSION_FILE, {**result.fusion.as_json(),
                                                  **dev_candidates_description(config, data.dev_candidates_from_file)})
    plot_training_curves(result.log_history, dev_metrics.get("baseline"), config.evaluation.metric_for_best_model,
                         run_dir / "training_curves.png")
    # Every start of the run; "arguments" stays the first start's flat mapping, as before resumes were recorded.
    starts = [{"started_at": start.get("started_at"), "arguments": start.get("arguments")}
              for start in read_starts(run_dir)] or [{"started_at": None, "arguments": config.as_arguments()}]
    info = {
        "arguments": starts[0]["arguments"],
        "starts": starts,
        "base_model": result.base_model,
        "data": data.as_dict(),
        # Absolute, so main.py can find the labelled queries again from any folder (overlap warnings).
        "train_xlsx": str(Path(config.data.train_xlsx).resolve()),
        "pairs": data.train_pairs,
        "best_checkpoint": result.best_checkpoint,
        "library_versions": library_versions(),
        "device": result.device,
        "processes": result.world_size,
        # Every session's time up to the checkpoint resumed from, then this session's.
        "wall_time_s": time.time() - started,
        "final_step": result.final_step,
        "peak_memory_gib": result.peak_memory_gib,
        # Base, trained or blended weights: the choice and every candidate's dev metrics.
        "weights": result.model_choice.as_json() if result.model_choice else None,
    }
    write_model_card(run_dir / "README.md", info, dev_metrics, card_facts(config))
    return write_completion_marker(run_dir, info)


def dev_candidates_description(config: TrainingConfig, from_file: bool) -> dict:
    """What produced the dev candidates the fusion was chosen on (fusion.json), from the run's own settings.

    `from_file`: whether any dev query's candidates came from --candidates (the others used --hard_neg_method).
    """
    negatives = config.negatives
    return describe_candidates(negatives.hard_neg_method, config.evaluation.dev_top_n, negatives.expand_documents,
                               negatives.embedding_model, from_file=from_file)


def card_facts(config: TrainingConfig) -> CardFacts:
    arguments = config.as_arguments()
    return CardFacts(corpus_file=Path(config.data.corpus_csv).name, train_file=Path(config.data.train_xlsx).name,
                     dev_top_n=config.evaluation.dev_top_n, augment_with_answers=config.data.augment_with_answers,
                     pseudo_queries_per_document=config.data.pseudo_queries_per_document,
                     settings={flag: arguments[flag] for flag in CARD_FLAGS}, hub_model_id=config.output.hub_model_id,
                     hub_dataset_id=config.output.hub_dataset_id)


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "FlagEmbedding", "scikit-learn", "numpy", "pandas"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions
