"""One fine-tuning run through the Hugging Face Trainer: model, precision, schedule, train, evaluate, save.

Imported only after the flags and data were checked, so bad input fails before torch loads; cross-
validation runs it once per fold.
"""

import logging
import math
import resource
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import EarlyStoppingCallback, TrainingArguments, set_seed

from reranker_kit.basics.distributed import is_main_process, world_size
from reranker_kit.data.loading import Query
from reranker_kit.fusion import FusionChoice, setting_key
from reranker_kit.metrics.paired import per_query_columns
from reranker_kit.models.loading import load_cross_encoder_with_info
from reranker_kit.models.lora import apply_lora, merge_lora, parameter_counts
from reranker_kit.models.pair_encoding import position_limit
from reranker_kit.models.weight_ensembling import head_was_trained
from reranker_kit.retrieval.candidates import Candidates
from reranker_kit.run_folder import checkpoint_steps
from reranker_kit.training.config import TrainingConfig
from reranker_kit.training.dataset import CrossEncoderCollator, build_train_dataset
from reranker_kit.training.dev_evaluation import DevEvaluator
from reranker_kit.training.losses import loss_from_name
from reranker_kit.training.model_choice import ModelChoice, choose_weights
from reranker_kit.training.negatives import TrainingGroup
from reranker_kit.training.outputs import read_baseline, write_baseline
from reranker_kit.training.result import DevMetrics, TrainingResult
from reranker_kit.training.trainer import (
    CheckpointProgressCallback,
    EvaluateAtEndCallback,
    GracefulInterruptCallback,
    RerankerTrainer,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    """What a run trains and evaluates on, mined and indexed before torch is imported."""

    corpus: dict[int, str]
    train_groups: list[TrainingGroup]
    dev_queries: list[Query]
    dev_groups: list[TrainingGroup]
    dev_candidates: Candidates | None  # The dev queries' first-stage candidates; None without dev queries.


def choose_precision(fp16: bool, bf16: bool) -> tuple[bool, bool]:
    """The mixed precision the hardware supports; asking for more warns and trains in full precision."""
    if not (fp16 or bf16):
        return False, False
    if not torch.cuda.is_available():
        logger.warning("--%s needs a CUDA GPU and none is available: training in full precision (fp32)",
                       "fp16" if fp16 else "bf16")
        return False, False
    if bf16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        logger.warning("--bf16 needs compute capability 8.0 or newer (this GPU: %s); training in full precision. "
                       "Use --fp16 on this GPU.", ".".join(map(str, torch.cuda.get_device_capability())))
        return False, False
    return fp16, bf16


def schedule(config: TrainingConfig, num_train_rows: int, has_dev: bool) -> tuple[int, int]:
    """Eval and save intervals that give at least one evaluation per epoch on small data."""
    rows_per_step = config.optimisation.batch_size * config.optimisation.gradient_accumulation_steps * world_size()
    steps_per_epoch = max(math.ceil(num_train_rows / rows_per_step), 1)
    eval_steps, save_steps = config.evaluation.eval_steps, config.evaluation.save_steps
    if has_dev and eval_steps > steps_per_epoch:
        logger.warning("--eval_steps %d is longer than an epoch (%d optimizer steps): evaluating and saving every "
                       "%d steps so the best checkpoint can be chosen", eval_steps, steps_per_epoch, steps_per_epoch)
        eval_steps = save_steps = steps_per_epoch
    return eval_steps, save_steps


def load_base_model(config: TrainingConfig):
    """(model, tokenizer, resolved name, loading info) of --base_model, a fresh head seeded: the same weights
    every time; the loading info says whether the head came from the checkpoint (`head_was_trained`)."""
    set_seed(config.optimisation.seed)  # Before loading: the fresh classification head is initialised from it.
    return load_cross_encoder_with_info(config.model.base_model)


def load_model(config: TrainingConfig):
    """(model, tokenizer, resolved name, max length) to train: embeddings frozen or LoRA adapters if asked."""
    model, tokenizer, resolved, _ = load_base_model(config)
    max_length = min(config.model.max_seq_length, position_limit(model.config))
    if max_length < config.model.max_seq_length:
        logger.warning("--max_seq_length %d exceeds what %s supports; using %d", config.model.max_seq_length,
                       config.model.base_model, max_length)
    if config.model.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if config.model.lora_r:
        model = apply_lora(model, r=config.model.lora_r, alpha=config.model.lora_alpha, dropout=config.model.lora_dropout)
        counts = parameter_counts(model)
        logger.info("LoRA rank %d: %d of %d parameters train (adapters and the classification head)",
                    config.model.lora_r, counts.trainable, counts.total)
    return model, tokenizer, resolved, max_length


def training_arguments(config: TrainingConfig, run_dir: Path, eval_steps: int, save_steps: int, has_dev: bool
                       ) -> TrainingArguments:
    fp16, bf16 = choose_precision(config.optimisation.fp16, config.optimisation.bf16)
    use_cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=config.optimisation.batch_size,
        gradient_accumulation_steps=config.optimisation.gradient_accumulation_steps,
        num_train_epochs=config.optimisation.epochs,
        max_steps=config.optimisation.max_steps,
        learning_rate=config.optimisation.lr,
        warmup_ratio=config.optimisation.warmup_ratio,
        weight_decay=config.optimisation.weight_decay,
        fp16=fp16,
        bf16=bf16,
        gradient_checkpointing=config.optimisation.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        # Pad each batch to its longest pair and batch similar lengths together.
        group_by_length=True,
        length_column_name="length",
        remove_unused_columns=False,
        eval_strategy="steps" if has_dev else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=config.evaluation.save_total_limit,
        load_best_model_at_end=has_dev,
        metric_for_best_model=config.evaluation.metric_for_best_model if has_dev else None,
        greater_is_better=True,
        logging_steps=config.evaluation.logging_steps,
        logging_first_step=True,
        report_to=config.output.report_to if config.output.report_to in ("none", "all") else [config.output.report_to],
        logging_dir=str(run_dir / "runs"),  # Tracker event files stay inside the run folder.
        push_to_hub=config.output.push_to_hub,
        hub_model_id=config.output.hub_model_id,
        hub_private_repo=config.output.hub_private_repo if config.output.push_to_hub else None,
        seed=config.optimisation.seed,
        data_seed=config.optimisation.seed,
        dataloader_num_workers=config.optimisation.dataloader_num_workers,
        dataloader_pin_memory=use_cuda,
        # Fused AdamW on CPU too: the foreach step over a trainable 256M-row embedding matrix is far slower.
        optim="adamw_torch_fused",
        # use_cpu lets accelerate see a CPU torchrun launch as multi-process (gloo) data parallelism.
        use_cpu=not use_cuda,
        ddp_find_unused_parameters=False,
        # The Trainer's progress bar (with its ETA) on stderr; log lines go through logging instead of dict prints.
        disable_tqdm=False,
    )


def build_trainer(config: TrainingConfig, model, tokenizer, max_length: int, data: TrainingData, run_dir: Path
                  ) -> tuple[RerankerTrainer, GracefulInterruptCallback]:
    """The Trainer with its dataset, collator, dev evaluator and callbacks; also the interrupt callback."""
    loss = loss_from_name(config.optimisation.loss)
    train_dataset = build_train_dataset(data.train_groups, data.corpus, tokenizer, max_length, loss.rows_are_groups)
    has_dev = bool(data.dev_queries)
    dev_evaluator = (DevEvaluator(data.dev_queries, data.dev_groups, data.corpus, data.dev_candidates, tokenizer,
                                  max_length, config.evaluation.eval_batch_size, show_progress_bar=is_main_process())
                     if has_dev else None)
    eval_steps, save_steps = schedule(config, len(train_dataset), has_dev)
    interrupt = GracefulInterruptCallback()
    callbacks = [interrupt, EvaluateAtEndCallback()]
    if config.evaluation.early_stopping_patience and has_dev:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.evaluation.early_stopping_patience))
    trainer = RerankerTrainer(
        model=model,
        args=training_arguments(config, run_dir, eval_steps, save_steps, has_dev),
        train_dataset=train_dataset,
        eval_dataset=data.dev_queries or None,  # evaluate() reranks their first-stage candidates.
        data_collator=CrossEncoderCollator(tokenizer, loss.rows_are_groups),
        processing_class=tokenizer,
        callbacks=callbacks,
        loss=loss,
        dev_evaluator=dev_evaluator,
    )
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


def train_reranker(config: TrainingConfig, data: TrainingData, run_dir: Path, resume_checkpoint: Path | None,
                   started: float) -> TrainingResult | None:
    """Trains and returns the result, or None when a signal stopped training after a checkpoint.

    `started`: when the run began, moved back by the time earlier sessions spent before the checkpoint.
    """
    model, tokenizer, resolved, max_length = load_model(config)
    trainer, interrupt = build_trainer(config, model, tokenizer, max_length, data, run_dir)
    trainer.add_callback(CheckpointProgressCallback(config.model.base_model, started))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with logging_redirect_tqdm(loggers=[logging.root, logging.getLogger("transformers")]):
        baseline = pretrained_dev_metrics(trainer, run_dir, resuming=resume_checkpoint is not None)
        train_metrics = train_or_restore(trainer, config, run_dir, resume_checkpoint)
    if interrupt.interrupted:
        step = trainer.state.global_step
        logger.warning("stopped at step %d; checkpoint saved in %s. Resume with: python fine_tune_reranker.py "
                       "<same flags> --resume_from_checkpoint %s", step, run_dir, run_dir / f"checkpoint-{step}")
        return None
    if config.model.lora_r:
        trainer.model = merge_lora(trainer.model)  # An ordinary model folder: every loader reads it as it is.
    dev, fusion, model_choice = None, None, None
    if trainer.dev_evaluator is not None:
        model_choice = keep_what_beats_the_base(trainer, config)
        dev, fusion = final_dev_metrics(trainer, config, baseline, model_choice)
    trainer.save_final_model(run_dir)
    return TrainingResult(
        dev=dev, fusion=fusion, train_metrics=train_metrics, log_history=trainer.state.log_history,
        best_checkpoint=trainer.state.best_model_checkpoint, base_model=_model_summary(config, model, resolved, max_length),
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        world_size=trainer.args.world_size, peak_memory_gib=peak_memory_gib(), is_main_process=trainer.is_world_process_zero(),
        final_step=trainer.state.global_step, hub_model_id=trainer.hub_model_id if config.output.push_to_hub else None,
        model_choice=model_choice)


def keep_what_beats_the_base(trainer: RerankerTrainer, config: TrainingConfig) -> ModelChoice:
    """Puts in `trainer.model` the base, trained or blended weights the dev queries support (`model_choice`)."""
    base, _, _, loading_info = load_base_model(config)
    base.to(trainer.args.device).eval()
    # From the reload itself: checking the head with has_trained_head would load the base once more.
    blend = config.model.weight_ensembling == "auto" and head_was_trained(loading_info)
    if config.model.weight_ensembling == "auto" and not blend:
        logger.info("weight ensembling skipped: %s has no trained ranking head (a fresh head blends into noise); "
                    "only the base and the trained weights compete", config.model.base_model)
    trainer.model, choice = choose_weights(trainer.dev_evaluator.model_per_query, base, trainer.model,
                                           config.evaluation.metric_for_best_model, blend)
    return choice


def final_dev_metrics(trainer: RerankerTrainer, config: TrainingConfig, baseline: dict, choice: ModelChoice
                      ) -> tuple[DevMetrics, FusionChoice]:
    """The saved model's dev metrics, the fusion chosen for it, and every ranker's per-query values."""
    metric = config.evaluation.metric_for_best_model
    evaluator = trainer.dev_evaluator
    scores = evaluator.candidate_scores(trainer.model)
    final, fusion = evaluator.evaluate_with_fusion(trainer.model, metric, scores)
    fused_key = setting_key(fusion.method, fusion.weight)
    per_query = {"first_stage": evaluator.per_query(evaluator.candidates.first_stage_scores),
                 "pretrained": choice.base_per_query, "fine_tuned": evaluator.per_query(scores),
                 "fused": per_query_columns(fusion.per_query_by_setting[fused_key], [q.qid for q in evaluator.queries])}
    dev = DevMetrics(fine_tuned=final, pretrained=baseline, first_stage=evaluator.first_stage_metrics(),
                     fused=fusion.fused_dev_metrics, metric_for_best_model=metric, per_query=per_query)
    logger.info("dev metrics of the saved model: %s", _brief(final))
    logger.info("fusion %s weight %.1f chosen on %d dev queries (%s %.3f; best before shrinking: %s)",
                fusion.method, fusion.weight, fusion.queries, metric, fusion.fused_dev_metrics[metric],
                fusion.best_setting)
    return dev, fusion


def train_or_restore(trainer: RerankerTrainer, config: TrainingConfig, run_dir: Path, resume_checkpoint: Path | None) -> dict:
    """Trains (from the checkpoint when resuming) and returns the training metrics.

    A checkpoint saved at the run's last step (the run stopped while saving its end) has nothing left to
    train: the Trainer would still take one more step, so its end state is restored instead.
    """
    if resume_checkpoint is not None:
        step, last_step = checkpoint_steps(resume_checkpoint)
        if step >= last_step and config.optimisation.max_steps <= step:  # -1: the schedule the run started with.
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


def _model_summary(config: TrainingConfig, model, resolved: str, max_length: int) -> dict:
    return {"name": config.model.base_model, "resolved": resolved, "max_length": max_length,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def peak_memory_gib() -> dict[str, float]:
    peaks = {"process_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # Linux reports KiB.
    if torch.cuda.is_available():
        peaks["cuda_allocated"] = torch.cuda.max_memory_allocated() / 2**30
    return peaks


def _brief(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.3f}" for key, value in metrics.items()
                     if isinstance(value, float) and ("@5" in key or key == "accuracy"))
