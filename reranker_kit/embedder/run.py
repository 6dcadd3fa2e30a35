"""One embedder fine-tuning run: load the base encoder, judge it, train, judge the result, keep what the dev
queries support, save.

The base encoder is a candidate like any checkpoint: when training did not beat it on the dev metric, the
saved model is the base, and the run says so (`finetune.verdict`). Imported only after the settings and
data were checked.
"""

import logging
from pathlib import Path

import torch
from datasets import Dataset
from tqdm.contrib.logging import logging_redirect_tqdm

from reranker_kit.basics.errors import SettingError
from reranker_kit.basics.files import share_like_other_files
from reranker_kit.embedder.arguments import EmbedderSettings
from reranker_kit.embedder.dataset import build_triples, column_prompts
from reranker_kit.embedder.dev_evaluation import FirstStageDev
from reranker_kit.embedder.modeling import load_encoder, model_summary
from reranker_kit.embedder.result import EmbedderDev, EmbedderResult
from reranker_kit.embedder.trainer import load_trainer
from reranker_kit.finetune.run_folders import JobKind
from reranker_kit.finetune.runner import RunInputs
from reranker_kit.finetune.trainer import disk_full_as_error, peak_memory_gib
from reranker_kit.finetune.verdict import NO_DEV, NOT_JUDGED, Verdict, judged
from reranker_kit.metrics.paired import compare_paired
from reranker_kit.retrieval.dense import SentenceEncoder, encoding_prompts
from reranker_kit.run_folder import WEIGHT_FILES

logger = logging.getLogger("fine_tune_embedder")


def train_embedder(settings: EmbedderSettings, inputs: RunInputs, run_dir: Path, resume_checkpoint: Path | None,
                   started: float, kind: JobKind) -> EmbedderResult | None:
    """Trains and saves the kept encoder in `run_dir`; None when a signal stopped training after a checkpoint."""
    negatives = settings.negatives.num_hard_negatives + settings.negatives.num_random_negatives
    triples = build_triples(inputs.mined.train_groups, inputs.corpus, negatives)
    logger.info("training rows: %d (query, positive, %d negative(s)) from %d queries%s", triples.rows, negatives,
                len(inputs.queries.all), f"; {triples.rows_short_of_negatives} group(s) mined fewer negatives than "
                "asked and were left out" if triples.rows_short_of_negatives else "")
    if not triples.rows:
        raise SettingError("num_hard_negatives", f"no training row has the {negatives} negative(s) asked for: lower "
                           "`num_hard_negatives` or `num_random_negatives` (the corpus or the hard pool is too small)")
    dev = FirstStageDev(inputs.corpus, inputs.dev_queries, settings.evaluation.cutoffs) if inputs.dev_queries else None
    encoder = load_encoder(settings)
    base_summary = model_summary(settings, encoder)
    metric, hybrid_metric = settings.evaluation.metric_for_best_model, settings.evaluation.hybrid_metric
    base_dev = dev.evaluate(encoder, hybrid_metric) if dev else None
    if base_dev:
        logger.info("dev metrics of the base encoder: %s", _brief(base_dev.dense))
    prompts = column_prompts(encoding_prompts(encoder.model), list(triples.columns))
    if prompts:
        logger.info("training with the model's prompts, as the first stage encodes: %s", prompts)
    trainer, interrupt = load_trainer(settings, encoder.model, Dataset.from_dict(triples.columns), dev, run_dir,
                                      prompts, select_best=dev is not None and not inputs.in_fold, started=started,
                                      kind=kind)
    with logging_redirect_tqdm(loggers=[logging.root, logging.getLogger("transformers")]):
        output = trainer.train(resume_from_checkpoint=str(resume_checkpoint) if resume_checkpoint else None)
    if interrupt.interrupted:
        return None
    if dev is None:
        verdict, kept, judged_dev = Verdict(NO_DEV, "fine-tuned"), trainer.model, None
    else:
        fine_dev = dev.evaluate(SentenceEncoder(trainer.model, "fine-tuned", identity=""), hybrid_metric)
        logger.info("dev metrics of the fine-tuned encoder: %s", _brief(fine_dev.dense))
        judged_dev = EmbedderDev(base_dev, fine_dev, metric)
        verdict, kept = keep_what_beats_the_base(settings, judged_dev, trainer.model, inputs.in_fold)
        logger.info("%s", verdict.log_line())
    save_final_model(kept, trainer, run_dir, kind)
    return EmbedderResult(
        dev=judged_dev, verdict=verdict, train_metrics=output.metrics, log_history=trainer.state.log_history,
        best_checkpoint=trainer.state.best_model_checkpoint, base_model=base_summary,
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", peak_memory_gib=peak_memory_gib(),
        final_step=trainer.state.global_step, train_rows=triples.rows,
        rows_short_of_negatives=triples.rows_short_of_negatives)


def save_final_model(model, trainer, run_dir: Path, kind: JobKind) -> None:
    """The kept encoder and the Trainer state; a full disk removes the partial weights and says so."""
    needed = sum(p.numel() * p.element_size() for p in model.parameters())

    def remove_partial_weights():
        for name in WEIGHT_FILES:
            (run_dir / name).unlink(missing_ok=True)

    with disk_full_as_error(run_dir, needed, remove_partial_weights, kind.resume_command()):
        model.save_pretrained(str(run_dir), create_model_card=False)
        trainer.save_state()
    share_like_other_files(run_dir)


def keep_what_beats_the_base(settings: EmbedderSettings, dev: EmbedderDev, trained_model, in_fold: bool):
    """(the verdict, the model to save): the trained encoder unless the base ranks better on the dev metric.

    A tie keeps the trained encoder: recall at the reranking depth often ties at its ceiling on 20 dev queries
    while training moved the top ranks (bench/QUALITY.md, section 8), and a tie shows no harm. A
    cross-validation fold keeps the trained encoder: its held-out queries measure, they never choose.
    """
    metric = dev.metric_for_best_model
    comparison = compare_paired(dev.fine_tuned.dense_per_query(metric), dev.base.dense_per_query(metric))
    if in_fold:
        return Verdict(NOT_JUDGED, "fine-tuned", metric, comparison.as_json()), trained_model
    if dev.fine_tuned.dense[metric] >= dev.base.dense[metric] - 1e-12:
        return judged("fine-tuned", metric, comparison), trained_model
    return judged("base", metric, comparison), load_encoder(settings).model


def _brief(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.3f}" for key, value in metrics.items() if key.startswith(("hit@3", "mrr@5", "recall@")))
