"""Training throughput and peak memory: the project's training path against the seed-style path.

    python bench/bench_training.py                                   # CPU, bundled MiniLM, 1 optimizer step each
    python bench/bench_training.py --max_steps 3                     # longer, steadier
    python bench/bench_training.py --model xlmr-large-random --num_layers 2 --max_steps 1     # CPU smoke
    # a GPU session (568M shape), see bench/RESULTS.md for the full list:
    python bench/bench_training.py --device cuda --model xlmr-large-random --max_steps 30 \
        --bf16 --batch_size 32 --gradient_accumulation_steps 1 --freeze_word_embeddings

Both paths train the same model (same seed, same initial weights) on the same pairs, mined from the sample
exactly as `fine_tune_reranker.py` does by default (80/20 split by query with seed 42, BM25, 2 hard
negatives from the top 50 and 1 random negative per positive, BCE rows), through the project's
`RerankerTrainer` with the TrainingArguments of `reranker_kit/training/run.py` (group_by_length on the `length` column,
remove_unused_columns=False, lr 2e-5, warm-up 0.1, weight decay 0.01, AdamW), for `--max_steps` optimizer
steps. Only what the flags below name differs:
- ours: `CrossEncoderCollator` (each batch padded to its longest pair), `--batch_size` x
  `--gradient_accumulation_steps` (project defaults 4 x 8), no gradient checkpointing unless
  `--gradient_checkpointing`, `--fp16`/`--bf16` only when asked, `--freeze_word_embeddings` when asked;
- seed-style: a `CrossEncoderCollator` subclass that pads every pair to max_length (512), batch 4 x 8,
  gradient checkpointing on, fp16 on a GPU (fp32 on the CPU, which has no fp16 autocast for training).

Each path runs in its own child process, one after the other in this invocation (`--rounds` alternates
them again to average out a shared machine's load). Pairs/s and real tokens/s are measured between
optimizer-step ends (the first `--skip_steps` steps are left out as warm-up; 0 on the CPU, 1 on a GPU by
default). With group_by_length the first step holds the longest pairs, so on the CPU (skip 0) a few steps
under-state our path's epoch average. Peak memory: torch.cuda.max_memory_allocated on a GPU; on the CPU the
child's ru_maxrss (whole process: Python, data, model, optimizer state and activations).
Outputs go to a tempfile.TemporaryDirectory; nothing is saved (save_strategy="no", eval_strategy="no").
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import XLMR_RANDOM, load_model, load_sample, machine_line, peak_rss_mib, run_child, table

SCRIPT = Path(__file__).resolve()
EPOCHS = 5  # the project's default --epochs
SEED_BATCH, SEED_ACCUMULATION = 4, 8


def mined_pairs():
    """(corpus, train groups) as fine_tune_reranker.py builds them with its defaults."""
    from reranker_kit.data.splits import split_queries
    from reranker_kit.retrieval import LexicalIndex
    from reranker_kit.training.negatives import effective_hard_top_k, mine_training_groups

    corpus, queries = load_sample()
    train_queries, _ = split_queries(queries, 0.2, 42)
    doc_ids = list(corpus)
    index = LexicalIndex([corpus[doc_id] for doc_id in doc_ids], method="bm25")
    groups, _ = mine_training_groups(train_queries, index, doc_ids, 2, 1, effective_hard_top_k(50, len(doc_ids)), 42)
    return corpus, groups


def seed_collator(tokenizer, max_length: int):
    """The seed's padding: every pair padded to max_length, whatever the batch holds."""
    import torch

    from reranker_kit.training.dataset import CrossEncoderCollator

    class PadToMaxLengthCollator(CrossEncoderCollator):
        def __init__(self, tokenizer, loss, max_length):
            super().__init__(tokenizer, loss)
            self.max_length = max_length

        def __call__(self, rows):
            keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in rows[0]]
            features = {key: [row[key] for row in rows] for key in keys}
            batch = dict(self.tokenizer.pad(features, padding="max_length", max_length=self.max_length,
                                            return_tensors="pt"))
            batch["labels"] = torch.tensor([row["labels"] for row in rows], dtype=torch.float32)
            return batch

    return PadToMaxLengthCollator(tokenizer, "bce", max_length)


def counting_trainer(**kwargs):
    """RerankerTrainer that counts the pairs and tokens each micro-batch actually trains on."""
    from reranker_kit.training.trainer import RerankerTrainer

    class CountingTrainer(RerankerTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.counts = {"pairs": 0, "real_tokens": 0, "computed_tokens": 0}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self.counts["pairs"] += int(inputs["input_ids"].shape[0])
            self.counts["real_tokens"] += int(inputs["attention_mask"].sum())
            self.counts["computed_tokens"] += int(inputs["input_ids"].numel())
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return CountingTrainer(**kwargs)


def step_clock(counts: dict, cuda: bool):
    """Trainer callback that marks (time, counts so far) at the start and at every optimizer-step end."""
    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self, counts, cuda):
            self.counts, self.cuda, self.marks = counts, cuda, []

        def _mark(self):
            if self.cuda:
                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), dict(self.counts)))

        def on_train_begin(self, args, state, control, **kwargs):
            self._mark()

        def on_step_end(self, args, state, control, **kwargs):
            self._mark()

    return StepClock(counts, cuda)


def path_settings(args, seed_style: bool, cuda: bool) -> dict:
    """The TrainingArguments the two paths set differently: the seed's fixed ones, or ours from the flags."""
    if seed_style:
        return dict(per_device_train_batch_size=SEED_BATCH, gradient_accumulation_steps=SEED_ACCUMULATION,
                    gradient_checkpointing=True, fp16=cuda, bf16=False)
    return dict(per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=args.gradient_accumulation_steps,
                gradient_checkpointing=args.gradient_checkpointing, fp16=args.fp16 and cuda, bf16=args.bf16 and cuda)


def train_path(model, tokenizer, dataset, collator, settings: dict, max_steps: int, cuda: bool):
    """Trains for `max_steps` optimizer steps. Returns (train output, step marks, padded tokens of one epoch)."""
    import torch
    from transformers import TrainingArguments

    from reranker_kit.training.losses import BinaryCrossEntropyLoss

    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, **settings, num_train_epochs=EPOCHS, max_steps=max_steps, learning_rate=2e-5,
            warmup_ratio=0.1, weight_decay=0.01, gradient_checkpointing_kwargs={"use_reentrant": False},
            group_by_length=True, length_column_name="length", remove_unused_columns=False, eval_strategy="no",
            save_strategy="no", logging_strategy="no", report_to="none", seed=42, data_seed=42,
            dataloader_pin_memory=cuda, optim="adamw_torch_fused", disable_tqdm=True, use_cpu=not cuda)
        trainer = counting_trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                                   processing_class=tokenizer, loss=BinaryCrossEntropyLoss())
        clock = step_clock(trainer.counts, cuda)
        trainer.add_callback(clock)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        output = trainer.train()
        # The padded tokens of one whole epoch as this path batches it (collation only, no model): with them
        # the rate measured on a few steps projects to an epoch whatever lengths those steps happened to hold.
        epoch_computed_tokens = sum(int(b["input_ids"].numel()) for b in trainer.get_train_dataloader())
    return output, clock.marks, epoch_computed_tokens


def step_figures(marks: list, skip_steps: int) -> dict:
    """Steps, seconds, counts and rates between optimizer-step ends, the first `skip_steps` left out as warm-up."""
    skip = min(skip_steps, len(marks) - 2)
    (t0, c0), (t1, c1) = marks[skip], marks[-1]
    seconds = t1 - t0
    done = {key: c1[key] - c0[key] for key in c1}
    return {
        "steps": len(marks) - 1, "timed_steps": len(marks) - 1 - skip, "seconds": seconds,
        "step_seconds": [b[0] - a[0] for a, b in zip(marks, marks[1:])],
        "pairs": done["pairs"], "real_tokens": done["real_tokens"], "computed_tokens": done["computed_tokens"],
        "pairs_per_s": done["pairs"] / seconds, "real_tokens_per_s": done["real_tokens"] / seconds,
    }


def add_projections(figures: dict, epoch_computed_tokens: int, cuda: bool) -> dict:
    """Adds the peak memory in GiB and the 5-epoch projections (by pairs and by whole-epoch padded tokens)."""
    figures["peak_memory_gib"] = figures["peak_cuda_gib"] if cuda else figures["peak_rss_mib"] / 1024
    figures["projected_5_epochs_s"] = figures["pairs_per_epoch"] * EPOCHS / figures["pairs_per_s"]
    figures["epoch_computed_tokens"] = epoch_computed_tokens
    figures["computed_tokens_per_s"] = figures["computed_tokens"] / figures["seconds"]
    figures["projected_5_epochs_by_tokens_s"] = EPOCHS * epoch_computed_tokens / figures["computed_tokens_per_s"]
    return figures


def run_path(args) -> dict:
    """Trains one path in this process and returns its figures."""
    import torch
    from transformers import set_seed

    from reranker_kit.models.pair_encoding import position_limit
    from reranker_kit.training.dataset import CrossEncoderCollator, build_train_dataset

    seed_style = args._path == "seed"
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    corpus, groups = mined_pairs()
    set_seed(42)  # before loading: the fresh head (and random weights) come from it, identical for both paths
    attention = args.seed_attention if seed_style and args.seed_attention != "same" else None
    model, tokenizer, description = load_model(args.model, args.num_layers, attention)
    max_length = min(512, position_limit(model.config))
    frozen = args.freeze_word_embeddings and not seed_style
    if frozen:
        model.get_input_embeddings().weight.requires_grad_(False)
    dataset = build_train_dataset(groups, corpus, tokenizer, max_length, rows_are_groups=False)
    settings = path_settings(args, seed_style, cuda)
    collator = seed_collator(tokenizer, max_length) if seed_style else CrossEncoderCollator(tokenizer, rows_are_groups=False)
    rss_before = peak_rss_mib()
    output, marks, epoch_computed_tokens = train_path(model, tokenizer, dataset, collator, settings, args.max_steps, cuda)
    figures = {
        "path": "seed" if seed_style else "ours", "model": description, "device": args.device,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "settings": describe(seed_style, max_length, settings, attention, frozen),
        **step_figures(marks, args.skip_steps),
        "pairs_per_epoch": len(dataset), "epoch_mean_length": sum(dataset["length"]) / len(dataset),
        "training_loss": output.training_loss, "rss_before_train_mib": rss_before, "peak_rss_mib": peak_rss_mib(),
        "peak_cuda_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    return add_projections(figures, epoch_computed_tokens, cuda)


def describe(seed_style: bool, max_length: int, settings: dict, attention, frozen: bool) -> str:
    padding = f"pad to {max_length}" if seed_style else "dynamic padding + group_by_length"
    precision = "fp16" if settings["fp16"] else "bf16" if settings["bf16"] else "fp32"
    words = [padding, f"batch {settings['per_device_train_batch_size']} x {settings['gradient_accumulation_steps']}",
             f"checkpointing {'on' if settings['gradient_checkpointing'] else 'off'}", precision]
    if attention:
        words.append(f"{attention} attention")
    if frozen:
        words.append("word embeddings frozen")
    return ", ".join(words)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", default="bundled-minilm", help=f"bundled-minilm, {XLMR_RANDOM}, or a local model folder.")
    parser.add_argument("--num_layers", type=int, help=f"Override the 24 layers of {XLMR_RANDOM} (CPU validation).")
    parser.add_argument("--max_steps", type=int, default=None, help="Optimizer steps per path (default 1 on CPU, 30 on GPU).")
    parser.add_argument("--skip_steps", type=int, default=None,
                        help="Warm-up steps left out of the rates (default 0 on CPU, 1 on GPU).")
    parser.add_argument("--batch_size", type=int, default=4, help="Ours: pairs per micro-batch.")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=8, help="Ours: micro-batches per step.")
    parser.add_argument("--gradient_checkpointing", action="store_true", help="Ours: recompute activations.")
    parser.add_argument("--freeze_word_embeddings", action="store_true", help="Ours: word embeddings fixed.")
    parser.add_argument("--fp16", action="store_true", help="Ours: fp16 autocast (GPU only).")
    parser.add_argument("--bf16", action="store_true", help="Ours: bf16 autocast (GPU with compute capability 8+).")
    parser.add_argument("--seed_attention", default="same", choices=["same", "eager", "sdpa"],
                        help="Seed-style attention implementation (the measured GPU anchors used eager).")
    parser.add_argument("--paths", nargs="+", default=["ours", "seed"], choices=["ours", "seed"])
    parser.add_argument("--rounds", type=int, default=1, help="Run the paths this many times, alternating.")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads in each child.")
    parser.add_argument("--json", type=Path, help="Also write every figure to this JSON file.")
    parser.add_argument("--_path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.max_steps is None:
        args.max_steps = 30 if args.device == "cuda" else 1
    if args.skip_steps is None:
        args.skip_steps = 1 if args.device == "cuda" else 0
    if args._path:
        print(json.dumps(run_path(args)))
        return

    child_args = [arg for arg in (argv if argv is not None else sys.argv[1:])]
    child_args = _strip(child_args, ("--paths", "--rounds", "--json"))
    child_args += ["--max_steps", str(args.max_steps), "--skip_steps", str(args.skip_steps)]
    print(f"Training benchmark; {machine_line()}")
    print(f"{args.max_steps} optimizer steps per path, first {args.skip_steps} left out of the rates; "
          f"{args.rounds} round(s); each path in its own child process, one after the other.\n", flush=True)
    results = []
    for round_index in range(args.rounds):
        for path in args.paths:
            result = run_child(SCRIPT, child_args + ["--_path", path])
            result["round"] = round_index + 1
            print(f"  done: {path:4s} round {result['round']}: {result['pairs']} pairs in {result['seconds']:.1f} s, "
                  f"steps {', '.join(f'{s:.1f}' for s in result['step_seconds'])} s, loss {result['training_loss']:.4f} "
                  f"(child {result['child_wall_s']:.0f} s)", flush=True)
            results.append(result)
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _strip(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    kept, skipping = [], False
    for arg in argv:
        if arg.startswith("--"):
            skipping = arg.split("=")[0] in flags or arg.split("=")[0] in ("--max_steps", "--skip_steps")
        if not skipping:
            kept.append(arg)
    return kept


def report(results: list[dict], args) -> None:
    first = results[0]
    print(f"\nmodel: {first['model']}; device {first['device']}{' (' + first['gpu'] + ')' if first['gpu'] else ''}")
    print(f"pairs per epoch: {first['pairs_per_epoch']} (mean {first['epoch_mean_length']:.0f} tokens); "
          f"projection = pairs per epoch x {EPOCHS} / pairs/s")
    cuda = args.device == "cuda"
    memory_unit = "peak GiB (cuda allocated)" if cuda else "peak GiB (process RSS)"
    rows = []
    for r in results:
        rows.append([f"{r['path']} (r{r['round']})", r["settings"], r["timed_steps"], r["pairs"],
                     f"{r['pairs_per_s']:.2f}", f"{r['real_tokens_per_s']:.0f}",
                     f"{r['real_tokens'] / r['computed_tokens']:.0%}", f"{r['peak_memory_gib']:.2f}"]
                    + ([] if cuda else [f"{(r['peak_rss_mib'] - r['rss_before_train_mib']) / 1024:.2f}"])
                    + [f"{r['projected_5_epochs_s']:.0f}", f"{r['projected_5_epochs_by_tokens_s']:.0f}"])
    print(table(rows, ["path", "settings", "steps", "pairs", "pairs/s", "real tok/s", "real share", memory_unit]
                + ([] if cuda else ["training +GiB RSS"]) + ["5 epochs s", "5 epochs s (by tokens)"]))
    print("(5 epochs s = pairs per epoch x 5 / pairs/s. By tokens = the padded tokens of a whole epoch as the "
          "path batches it / padded tokens per second measured: it corrects for the lengths of the few timed steps.)")
    ours = [r for r in results if r["path"] == "ours"]
    seed = [r for r in results if r["path"] == "seed"]
    if not (ours and seed):
        return
    total = lambda rs, key: sum(r[key] for r in rs)  # noqa: E731
    ours_rate = total(ours, "pairs") / total(ours, "seconds")
    seed_rate = total(seed, "pairs") / total(seed, "seconds")
    ours_tok = total(ours, "real_tokens") / total(ours, "seconds")
    seed_tok = total(seed, "real_tokens") / total(seed, "seconds")
    ours_mem = max(r["peak_memory_gib"] for r in ours)
    seed_mem = max(r["peak_memory_gib"] for r in seed)
    print(f"\nours / seed-style (all rounds pooled): pairs/s {ours_rate:.2f} / {seed_rate:.2f} = "
          f"{ours_rate / seed_rate:.2f}x; real tokens/s {ours_tok:.0f} / {seed_tok:.0f} = {ours_tok / seed_tok:.2f}x; "
          f"peak memory {ours_mem:.2f} / {seed_mem:.2f} GiB = {ours_mem / seed_mem:.2f}x")
    epoch = first["pairs_per_epoch"] * EPOCHS
    print(f"projected {EPOCHS}-epoch job ({epoch} pairs): ours {epoch / ours_rate:.0f} s, seed-style "
          f"{epoch / seed_rate:.0f} s")
    ours_epoch = sum(r["projected_5_epochs_by_tokens_s"] for r in ours) / len(ours)
    seed_epoch = sum(r["projected_5_epochs_by_tokens_s"] for r in seed) / len(seed)
    print(f"by tokens (whole-epoch lengths): ours {ours_epoch:.0f} s, seed-style {seed_epoch:.0f} s -> ours "
          f"{seed_epoch / ours_epoch:.2f}x faster over the job")
    timed_mean = total(ours, "real_tokens") / max(total(ours, "pairs"), 1)
    print(f"(ours' timed steps averaged {timed_mean:.0f} real tokens per pair against {first['epoch_mean_length']:.0f} "
          f"over the epoch: group_by_length puts the longest pairs first)")
    target = 8.0 if args.device == "cuda" else 2.0
    ratio = ours_rate / seed_rate
    verdict = f"MET ({ratio / target:.2f}x the target)" if ratio >= target else f"MISSED ({ratio:.2f}x < {target:.0f}x)"
    print(f"target ours >= {target:.0f}x seed-style throughput ({args.device}), measured steps: {ratio:.2f}x -> {verdict}")
    ratio = seed_epoch / ours_epoch
    verdict = f"MET ({ratio / target:.2f}x the target)" if ratio >= target else f"MISSED ({ratio:.2f}x < {target:.0f}x)"
    print(f"target ours >= {target:.0f}x seed-style throughput ({args.device}), whole epoch by tokens: {ratio:.2f}x "
          f"-> {verdict}")


if __name__ == "__main__":
    main()
