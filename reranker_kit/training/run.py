"""One reranker fine-tuning run through the Hugging Face Trainer: model, Trainer, train, judge, save.

Imported only after the settings and data were checked, so bad input fails before torch loads; cross-
validation runs it once per fold.
"""

import logging
from pathlib import Path

import torch
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import EarlyStoppingCallback, TrainingArguments

from reranker_kit.basics.distributed import is_main_process
from reranker_kit.finetune.run_folders import JobKind
from reranker_kit.finetune.runner import RunInputs
from reranker_kit.finetune.trainer import (
    eval_interval,
    kit_callbacks,
    peak_memory_gib,
    replace_default_callbacks,
    trainer_arguments,
)
from reranker_kit.fusion import FusionChoice, setting_key
from reranker_kit.metrics.paired import per_query_columns
from reranker_kit.models.lora import merge_lora
from reranker_kit.models.weight_ensembling import head_was_trained
from reranker_kit.run_folder import checkpoint_steps
from reranker_kit.training.arguments import RerankerSettings
from reranker_kit.training.dataset import CrossEncoderCollator, build_train_dataset
from reranker_kit.training.dev_evaluation import DevEvaluator
from reranker_kit.training.losses import loss_from_name
from reranker_kit.training.model_choice import ModelChoice, choose_weights
from reranker_kit.training.modeling import load_base_model, load_tokenizer_and_model, model_summary
from reranker_kit.training.outputs import read_baseline, write_baseline
from reranker_kit.training.result import DevMetrics, TrainingResult
from reranker_kit.training.trainer import RerankerTrainer

logger = logging.getLogger(__name__)


def training_arguments(settings: RerankerSettings, run_dir: Path, intervals: tuple[int, int], has_dev: bool,
                       select_best: bool) -> TrainingArguments:
    """The shared mapping (`finetune.trainer.trainer_arguments`) and what a cross-encoder adds to it."""
    return trainer_arguments(
        TrainingArguments, settings, run_dir, intervals, has_dev, select_best,
        # Pad each batch to its longest pair and batch similar lengths together.
        group_by_length=True, length_column_name="length", remove_unused_columns=False,
        push_to_hub=settings.output.push_to_hub, hub_model_id=settings.output.hub_model_id,
        hub_private_repo=settings.output.hub_private_repo if settings.output.push_to_hub else None,
        # Fused AdamW on CPU too: the foreach step over a trainable 256M-row embedding matrix is far slower.
        optim="adamw_torch_fused", ddp_find_unused_parameters=False)


def load_trainer(settings: RerankerSettings, model, tokenizer, max_length: int, inputs: RunInputs, run_dir: Path,
                 started: float, kind: JobKind):
    """The Trainer with its dataset, collator, dev evaluator and the kit's callbacks; also the interrupt callback."""
    loss = loss_from_name(settings.optimisation.loss)
    mined = inputs.mined
    train_dataset = build_train_dataset(mined.train_groups, inputs.corpus, tokenizer, max_length, loss.rows_are_groups)
    has_dev = bool(inputs.dev_queries)
    dev_evaluator = (DevEvaluator(inputs.dev_queries, mined.dev_groups, inputs.corpus, mined.dev_candidates, tokenizer,
                                  max_length, settings.evaluation.eval_batch_size, show_progress_bar=is_main_process())
                     if has_dev else None)
    select_best = has_dev and not inputs.in_fold  # A fold's held-out queries measure; they never choose.
    arguments = training_arguments(settings, run_dir, eval_interval(settings, len(train_dataset), has_dev), has_dev,
                                   select_best)
    trainer = RerankerTrainer(
        model=model, args=arguments, train_dataset=train_dataset,
        eval_dataset=inputs.dev_queries or None,  # evaluate() reranks their first-stage candidates.
        data_collator=CrossEncoderCollator(tokenizer, loss.rows_are_groups), processing_class=tokenizer,
        loss=loss, dev_evaluator=dev_evaluator, resume_hint=kind.resume_command())
    callbacks, interrupt = kit_callbacks(settings.model.base_model, started, kind.name)
    if settings.evaluation.early_stopping_patience and has_dev:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.evaluation.early_stopping_patience))
    replace_default_callbacks(trainer, callbacks)
    return trainer, interrupt


def pretrained_dev_metrics(trainer: RerankerTrainer, run_dir: Path, resuming: bool) -> dict | None:
    """The pretrained model's dev metrics; a resumed run reuses those of its first start."""
    if trainer.dev_evaluator is None:
        return None
    baseline = read_baseline(run_dir) if resuming else None
    if baseline is None:
        baseline = trainer.dev_evaluator(trainer.model)
        if trainer.is_world_process_zero():
            write_baseline(run_dir, baseline)
    logger.info("dev metrics before fine-tuning: %s", _brief(baseline))
    return baseline


def train_reranker(settings: RerankerSettings, inputs: RunInputs, run_dir: Path, resume_checkpoint: Path | None,
                   started: float, kind: JobKind) -> TrainingResult | None:
    """Trains and returns the result, or None when a signal stopped training after a checkpoint.

    `started`: when the run began, moved back by the time earlier sessions spent before the checkpoint.
    """
    model, tokenizer, resolved, max_length = load_tokenizer_and_model(settings)
    trainer, interrupt = load_trainer(settings, model, tokenizer, max_length, inputs, run_dir, started, kind)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with logging_redirect_tqdm(loggers=[logging.root, logging.getLogger("transformers")]):
        baseline = pretrained_dev_metrics(trainer, run_dir, resuming=resume_checkpoint is not None)
        train_metrics = train_or_restore(trainer, settings, run_dir, resume_checkpoint)
    if interrupt.interrupted:
        return None
    if settings.model.lora_r:
        trainer.model = merge_lora(trainer.model)  # An ordinary model folder: every loader reads it as it is.
    dev, fusion, model_choice = None, None, None
    if trainer.dev_evaluator is not None:
        model_choice = None if inputs.in_fold else keep_what_beats_the_base(trainer, settings)
        dev, fusion = final_dev_metrics(trainer, settings, baseline, model_choice)
    trainer.save_final_model(run_dir)
    return TrainingResult(
        dev=dev, fusion=fusion, train_metrics=train_metrics, log_history=trainer.state.log_history,
        best_checkpoint=trainer.state.best_model_checkpoint,
        base_model=model_summary(settings, model, resolved, max_length),
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        world_size=trainer.args.world_size, peak_memory_gib=peak_memory_gib(), is_main_process=trainer.is_world_process_zero(),
        final_step=trainer.state.global_step, hub_model_id=trainer.hub_model_id if settings.output.push_to_hub else None,
        model_choice=model_choice)


def keep_what_beats_the_base(trainer: RerankerTrainer, settings: RerankerSettings) -> ModelChoice:
    """Puts in `trainer.model` the base, trained or blended weights the dev queries support (`model_choice`)."""
    base, _, _, loading_info = load_base_model(settings)
    base.to(trainer.args.device).eval()
    # From the reload itself: checking the head with has_trained_head would load the base once more.
    blend = settings.model.weight_ensembling == "auto" and head_was_trained(loading_info)
    if settings.model.weight_ensembling == "auto" and not blend:
        logger.info("weight ensembling skipped: %s has no trained ranking head (a fresh head blends into noise); "
                    "only the base and the trained weights compete", settings.model.base_model)
    trainer.model, choice = choose_weights(trainer.dev_evaluator.model_per_query, base, trainer.model,
                                           settings.evaluation.metric_for_best_model, blend,
                                           base_head_trained=head_was_trained(loading_info))
    return choice


def final_dev_metrics(trainer: RerankerTrainer, settings: RerankerSettings, baseline: dict, choice: ModelChoice | None
                      ) -> tuple[DevMetrics, FusionChoice]:
    """The saved model's dev metrics, the fusion chosen for it, and every ranker's per-query values."""
    metric = settings.evaluation.metric_for_best_model
    evaluator = trainer.dev_evaluator
    scores = evaluator.candidate_scores(trainer.model)
    final, fusion = evaluator.evaluate_with_fusion(trainer.model, metric, scores)
    fused_key = setting_key(fusion.method, fusion.weight)
    pretrained = choice.base_per_query if choice else evaluator.model_per_query(load_base_model(settings)[0]
                                                                                  .to(trainer.args.device).eval())
    per_query = {"first_stage": evaluator.per_query(evaluator.candidates.first_stage_scores),
                 "pretrained": pretrained, "fine_tuned": evaluator.per_query(scores),
                 "fused": per_query_columns(fusion.per_query_by_setting[fused_key], [q.qid for q in evaluator.queries])}
    dev = DevMetrics(fine_tuned=final, pretrained=baseline, first_stage=evaluator.first_stage_metrics(),
                     fused=fusion.fused_dev_metrics, metric_for_best_model=metric, per_query=per_query)
    logger.info("dev metrics of the saved model: %s", _brief(final))
    logger.info("fusion %s weight %.1f chosen on %d dev queries (%s %.3f; best before shrinking: %s)",
                fusion.method, fusion.weight, fusion.queries, metric, fusion.fused_dev_metrics[metric],
                fusion.best_setting)
    return dev, fusion


def train_or_restore(trainer: RerankerTrainer, settings: RerankerSettings, run_dir: Path, resume_checkpoint: Path | None
                     ) -> dict:
    """Trains (from the checkpoint when resuming) and returns the training metrics.

    A checkpoint saved at the run's last step (the run stopped while saving its end) has nothing left to
    train: the Trainer would still take one more step, so its end state is restored instead.
    """
    if resume_checkpoint is not None:
        step, last_step = checkpoint_steps(resume_checkpoint)
        if step >= last_step and settings.optimisation.max_steps <= step:  # -1: the schedule the run started with.
            logger.info("%s is the run's last step (%d): finishing the run without training further",
                        resume_checkpoint.name, step)
            return restore_last_step(trainer, resume_checkpoint, run_dir)
    return trainer.train(resume_from_checkpoint=str(resume_checkpoint) if resume_checkpoint else None).metrics


def restore_last_step(trainer: RerankerTrainer, checkpoint: Path, run_dir: Path) -> dict:
    """What the end of `Trainer.train` leaves: the checkpoint's state and the best (or last) weights."""
    from transformers import AutoModelForSequenceClassification, TrainerState

    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    best = state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    # The state records checkpoint paths as they were when saved; the run folder may have moved since.
    weights = run_dir / Path(best).name if best and (run_dir / Path(best).name).is_dir() else checkpoint
    trainer.model = AutoModelForSequenceClassification.from_pretrained(str(weights)).to(trainer.args.device)
    trainer.state = state
    return {"epoch": state.epoch, "global_step": state.global_step, "total_flos": state.total_flos,
            "restored_from": weights.name}


def _brief(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.3f}" for key, value in metrics.items()
                     if isinstance(value, float) and ("@5" in key or key == "accuracy"))
