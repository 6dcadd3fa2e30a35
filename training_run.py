"""One fine-tuning run through the Hugging Face Trainer: model, precision, schedule, train, evaluate, save.

Kept apart from `fine_tune_reranker.py` so the script checks flags and data before torch and
transformers are imported, and so cross-validation can run this once per fold.
"""

import json
import logging
import math
import resource
from pathlib import Path

import torch
from transformers import EarlyStoppingCallback, TrainingArguments, set_seed

from model_loading import load_cross_encoder
from pair_encoding import position_limit
from reranker_training import (CrossEncoderCollator, DevEvaluator, EvaluateAtEndCallback,
                               GracefulInterruptCallback, RerankerTrainer, build_train_dataset)
from run_dirs import write_json_atomic

logger = logging.getLogger(__name__)


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


def schedule(args, num_train_rows: int, has_dev: bool) -> tuple[int, int]:
    """Eval and save intervals that give at least one evaluation per epoch on small data."""
    world_size = max(torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1, 1)
    rows_per_step = args.batch_size * args.gradient_accumulation_steps * world_size
    steps_per_epoch = max(math.ceil(num_train_rows / rows_per_step), 1)
    eval_steps, save_steps = args.eval_steps, args.save_steps
    if has_dev and eval_steps > steps_per_epoch:
        logger.warning("--eval_steps %d is longer than an epoch (%d optimizer steps): evaluating and saving every "
                       "%d steps so the best checkpoint can be chosen", eval_steps, steps_per_epoch, steps_per_epoch)
        eval_steps = save_steps = steps_per_epoch
    return eval_steps, save_steps


def train_reranker(args, corpus, train_groups, dev_queries, dev_groups, index, doc_ids, run_dir: Path,
                   resume_checkpoint: Path | None) -> dict | None:
    """Trains and returns the results, or None when a signal stopped training after a checkpoint."""
    set_seed(args.seed)  # Before loading: the fresh classification head is initialised from it.
    model, tokenizer, resolved = load_cross_encoder(args.base_model)
    max_length = min(args.max_seq_length, position_limit(model.config))
    if max_length < args.max_seq_length:
        logger.warning("--max_seq_length %d exceeds what %s supports; using %d", args.max_seq_length,
                       args.base_model, max_length)
    if args.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    fp16, bf16 = choose_precision(args.fp16, args.bf16)
    use_cuda = torch.cuda.is_available()

    train_dataset = build_train_dataset(train_groups, corpus, tokenizer, max_length, args.loss)
    has_dev = bool(dev_queries)
    dev_evaluator = (DevEvaluator(dev_queries, dev_groups, corpus, index, doc_ids, tokenizer, max_length,
                                  args.eval_batch_size, args.dev_top_n) if has_dev else None)
    eval_steps, save_steps = schedule(args, len(train_dataset), has_dev)

    training_args = TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        fp16=fp16,
        bf16=bf16,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        # Pad each batch to its longest pair and batch similar lengths together.
        group_by_length=True,
        length_column_name="length",
        remove_unused_columns=False,
        eval_strategy="steps" if has_dev else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=args.save_total_limit,
        load_best_model_at_end=has_dev,
        metric_for_best_model=args.metric_for_best_model if has_dev else None,
        greater_is_better=True,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        report_to="none",
        seed=args.seed,
        data_seed=args.seed,
        dataloader_num_workers=args.dataloader_num_workers,
        dataloader_pin_memory=use_cuda,
        # Fused AdamW on CPU too: with a 256M-parameter embedding matrix trainable, the foreach AdamW step
        # took 11x longer on CPU (bench/RESULTS.md, section 4).
        optim="adamw_torch_fused",
        # use_cpu lets accelerate see a CPU torchrun launch as multi-process (gloo) data parallelism.
        use_cpu=not use_cuda,
        ddp_find_unused_parameters=False,
        disable_tqdm=True,
    )
    interrupt = GracefulInterruptCallback()
    callbacks = [interrupt, EvaluateAtEndCallback()]
    if args.early_stopping_patience and has_dev:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience))
    trainer = RerankerTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=train_dataset.select(range(1)) if has_dev else None,  # Unused: evaluate() reranks dev queries.
        data_collator=CrossEncoderCollator(tokenizer, args.loss),
        processing_class=tokenizer,
        callbacks=callbacks,
        loss=args.loss,
        dev_evaluator=dev_evaluator,
    )
    if use_cuda:
        torch.cuda.reset_peak_memory_stats()

    # The pretrained model's dev metrics; a resumed run reuses those of its first start.
    baseline_path = run_dir / "baseline_dev_metrics.json"
    baseline = None
    if has_dev:
        if resume_checkpoint is not None and baseline_path.is_file():
            baseline = json.loads(baseline_path.read_text(encoding="utf-8"))
        else:
            baseline = dev_evaluator(trainer.model)
            if trainer.is_world_process_zero():
                write_json_atomic(baseline_path, baseline)
        logger.info("dev metrics before fine-tuning: %s", _brief(baseline))

    train_output = trainer.train(resume_from_checkpoint=str(resume_checkpoint) if resume_checkpoint else None)
    if interrupt.interrupted:
        latest = trainer.state.global_step
        logger.warning("stopped at step %d; checkpoint saved in %s. Resume with: python fine_tune_reranker.py "
                       "<same flags> --resume_from_checkpoint %s", latest, run_dir, run_dir / f"checkpoint-{latest}")
        return None

    final, fusion = dev_evaluator.evaluate_with_fusion(trainer.model, args.metric_for_best_model) if has_dev else ({}, None)
    dev_metrics = dict(final)
    if has_dev:
        dev_metrics.update(baseline=baseline, metric_for_best_model=args.metric_for_best_model,
                           first_stage=dev_evaluator.first_stage_metrics(), fused=fusion["fused_dev_metrics"])
        logger.info("dev metrics after fine-tuning: %s", _brief(final))
        logger.info("fusion weight %.1f chosen on dev (%s %.3f)", fusion["weight"], args.metric_for_best_model,
                    fusion["fused_dev_metrics"][args.metric_for_best_model])
    trainer.save_model(str(run_dir))
    trainer.save_state()
    return {
        "is_main_process": trainer.is_world_process_zero(),
        "dev_metrics": dev_metrics,
        "train_metrics": train_output.metrics,
        "log_history": trainer.state.log_history,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "fusion": fusion,
        "base_model": {"name": args.base_model, "resolved": resolved, "max_length": max_length,
                       "parameters": sum(p.numel() for p in model.parameters()),
                       "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        "device": torch.cuda.get_device_name() if use_cuda else "cpu",
        "world_size": training_args.world_size,
        "peak_memory_gib": peak_memory_gib(use_cuda),
    }


def peak_memory_gib(use_cuda: bool) -> dict[str, float]:
    peaks = {"process_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # Linux reports KiB.
    if use_cuda:
        peaks["cuda_allocated"] = torch.cuda.max_memory_allocated() / 2**30
    return peaks


def _brief(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.3f}" for key, value in metrics.items()
                     if isinstance(value, float) and ("@5" in key or key == "accuracy"))
