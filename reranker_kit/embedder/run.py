"""One embedder fine-tuning run: load the base encoder, judge it, train, judge each checkpoint, keep the best.

The base encoder is a candidate like any checkpoint: when no checkpoint beats it on the dev metric, the
saved model is the base, and the run says so. Imported only after the flags and data were checked.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import set_seed

from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.embedder.config import EmbedderSettings
from reranker_kit.embedder.dataset import TripleColumns, column_prompts
from reranker_kit.embedder.dev_evaluation import FirstStageDev
from reranker_kit.embedder.result import BASE_KEPT, FINE_TUNED_WINS, NO_DEV, NOT_SELECTED, EmbedderDev, EmbedderResult
from reranker_kit.embedder.trainer import (
    EmbedderLoss,
    RetrievalEvaluator,
    build_trainer,
    eval_interval,
    training_arguments,
)
from reranker_kit.models.pair_encoding import position_limit
from reranker_kit.retrieval.dense import SentenceEncoder, encoding_prompts
from reranker_kit.training.run import peak_memory_gib
from reranker_kit.training.trainer import CheckpointProgressCallback

logger = logging.getLogger("fine_tune_embedder")


@dataclass(frozen=True)
class EmbedderData:
    """What a run trains and evaluates on, mined before torch was imported."""

    triples: TripleColumns
    dev: FirstStageDev | None  # None without dev queries.


def load_encoder(settings: EmbedderSettings) -> SentenceEncoder:
    """The base encoder with its token budget capped at what its positions allow."""
    set_seed(settings.optimisation.seed)
    encoder = SentenceEncoder.load(settings.model.base_model)
    config = encoder.model[0].auto_model.config
    encoder.model.max_seq_length = min(settings.model.max_seq_length, position_limit(config))
    if encoder.model.max_seq_length < settings.model.max_seq_length:
        logger.warning("--max_seq_length %d exceeds what %s supports; using %d", settings.model.max_seq_length,
                       settings.model.base_model, encoder.model.max_seq_length)
    if settings.model.freeze_word_embeddings:
        encoder.model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    return encoder


def train_embedder(settings: EmbedderSettings, data: EmbedderData, run_dir: Path, resume_checkpoint: Path | None,
                   started: float) -> EmbedderResult | None:
    """Trains and saves the chosen encoder in `run_dir`; None when a signal stopped training after a checkpoint."""
    encoder = load_encoder(settings)
    base_summary = _model_summary(settings, encoder)
    evaluation, optimisation = settings.evaluation, settings.optimisation
    base_dev = data.dev.evaluate(encoder, evaluation.hybrid_metric) if data.dev else None
    if base_dev:
        logger.info("dev metrics of the base encoder: %s", _brief(base_dev.dense))
    rows_per_step = optimisation.batch_size * optimisation.gradient_accumulation_steps
    intervals = eval_interval(evaluation, rows_per_step, data.triples.rows, data.dev is not None)
    prompts = column_prompts(encoding_prompts(encoder.model), list(data.triples.columns))
    if prompts:
        logger.info("training with the model's prompts, as the first stage encodes: %s", prompts)
    arguments = training_arguments(optimisation, evaluation, settings.output, run_dir, intervals, data.dev is not None,
                                   prompts)
    evaluator = RetrievalEvaluator(data.dev, evaluation.metric_for_best_model) if data.dev else None
    trainer, interrupt = build_trainer(encoder.model, Dataset.from_dict(data.triples.columns), arguments,
                                       EmbedderLoss(optimisation.loss, optimisation.mini_batch_size), evaluator,
                                       evaluation.early_stopping_patience)
    trainer.add_callback(CheckpointProgressCallback(settings.model.base_model, started))
    with logging_redirect_tqdm(loggers=[logging.root, logging.getLogger("transformers")]):
        output = trainer.train(resume_from_checkpoint=str(resume_checkpoint) if resume_checkpoint else None)
    if interrupt.interrupted:
        step = trainer.state.global_step
        logger.warning("stopped at step %d; checkpoint saved in %s. Resume with: python fine_tune_embedder.py "
                       "<same flags> --resume_from_checkpoint %s", step, run_dir, run_dir / f"checkpoint-{step}")
        return None
    dev, saved_model = judge_against_base(settings, data, base_dev, trainer.model)
    saved_model.save_pretrained(str(run_dir), create_model_card=False)
    trainer.save_state()
    return EmbedderResult(
        dev=dev, verdict=dev.verdict if dev else NO_DEV, train_metrics=output.metrics,
        log_history=trainer.state.log_history, best_checkpoint=trainer.state.best_model_checkpoint,
        base_model=base_summary, device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        peak_memory_gib=peak_memory_gib(), final_step=trainer.state.global_step, train_rows=data.triples.rows)


def judge_against_base(settings: EmbedderSettings, data: EmbedderData, base_dev, trained_model):
    """(the dev verdict, the model to save): the trained encoder only if it beats the base on the dev metric."""
    if data.dev is None:
        return None, trained_model
    metric = settings.evaluation.metric_for_best_model
    fine_dev = data.dev.evaluate(SentenceEncoder(trained_model, "fine-tuned", identity=""),
                                 settings.evaluation.hybrid_metric)
    logger.info("dev metrics of the fine-tuned encoder: %s", _brief(fine_dev.dense))
    if not settings.evaluation.select_on_dev:
        return EmbedderDev(base_dev, fine_dev, metric, NOT_SELECTED), trained_model
    if fine_dev.dense[metric] > base_dev.dense[metric] + 1e-12:
        logger.info("verdict: the fine-tuned encoder beats the base on dev %s (%.4f against %.4f) and is saved",
                    metric, fine_dev.dense[metric], base_dev.dense[metric])
        return EmbedderDev(base_dev, fine_dev, metric, FINE_TUNED_WINS), trained_model
    logger.warning("verdict: fine-tuning did not beat the base encoder on dev %s (%.4f against %.4f): the saved model "
                   "is the base encoder", metric, fine_dev.dense[metric], base_dev.dense[metric])
    return EmbedderDev(base_dev, fine_dev, metric, BASE_KEPT), load_encoder(settings).model


def _model_summary(settings: EmbedderSettings, encoder: SentenceEncoder) -> dict:
    model = encoder.model
    return {"name": settings.model.base_model, "resolved": resolve_model_name(settings.model.base_model),
            "max_length": model.max_seq_length, "parameters": sum(p.numel() for p in model.parameters()),
            "embedding_dimension": model.get_embedding_dimension()}


def _brief(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.3f}" for key, value in metrics.items() if key.startswith(("hit@3", "mrr@5", "recall@")))

