"""Where a training step's time goes with the word embeddings trainable against frozen (issue 6's lead).

Runs the steps the Hugging Face Trainer runs for one optimizer step (forward and BCE loss under autocast,
backward with loss scaling for fp16, unscale, gradient clipping, AdamW, zero_grad) on the XLM-RoBERTa-large
shape with random weights and real sample pair lengths, times each phase (synchronised on a GPU), and
prints the torch.profiler operators that cost the most. Example:

    python bench/profile_step.py --device cuda --bf16 --batch_size 32          # the CONTEXT.md case
    python bench/profile_step.py --num_layers 2 --batch_size 8                  # CPU, a few minutes
"""

import argparse
import json
import time
from pathlib import Path

from _common import XLMR_RANDOM, load_model, machine_line, sample_pairs, table, train_unigram_tokenizer

PHASES = ("forward", "backward", "unscale", "clip", "optimizer", "zero_grad")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_layers", type=int, default=None, help="Override the 24 layers (CPU runs).")
    parser.add_argument("--batch_size", type=int, default=8, help="Pairs per step (no accumulation).")
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--fp16", action="store_true", help="fp16 autocast with a GradScaler, as the Trainer does.")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--optimizer", choices=("fused", "foreach", "for_loop"), default=None,
                        help="AdamW implementation (default: fused on a GPU, foreach on a CPU, as reranker_kit/training/run.py).")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per setting, after 2 warm-up steps.")
    parser.add_argument("--json", type=str, default=None)
    return parser.parse_args()


def optimizer_for(model, kind: str):
    import torch

    # The Trainer's grouping: no weight decay on biases and LayerNorm weights.
    decay = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith("bias") and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (n.endswith("bias") or "LayerNorm" in n)]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    flags = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for_loop": dict(foreach=False)}[kind]
    return torch.optim.AdamW(groups, lr=2e-5, **flags)


def timed_step(model, optimizer, scaler, batch, device: str, dtype, timings: dict) -> None:
    """One optimizer step as the Trainer runs it; appends each phase's seconds to `timings[phase]`."""
    import torch
    import torch.nn.functional as F

    cuda = device.startswith("cuda")
    marks = [time.perf_counter()]

    def mark():
        if cuda:
            torch.cuda.synchronize()  # GPU work is asynchronous: wait so the time lands in its own phase
        marks.append(time.perf_counter())

    with torch.autocast(device.split(":")[0], dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.view(-1).float()
    loss = F.binary_cross_entropy_with_logits(logits, batch["labels"])
    mark()
    scaler.scale(loss).backward()
    mark()
    scaler.unscale_(optimizer)
    mark()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    mark()
    scaler.step(optimizer)
    scaler.update()
    mark()
    optimizer.zero_grad(set_to_none=True)
    mark()
    for phase, start, end in zip(PHASES, marks, marks[1:]):
        timings.setdefault(phase, []).append(end - start)


def top_operators(run_step, cuda: bool) -> str:
    """torch.profiler's table of the 15 operators with the most self time over one call of `run_step`."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        run_step()
        if cuda:
            torch.cuda.synchronize()
    sort_key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort_key, row_limit=15)


def profile_setting(args, frozen: bool, batches) -> dict:
    """Times `args.steps` steps after 2 warm-up ones on a fresh model, then profiles one more step."""
    import torch

    torch.manual_seed(0)
    model, _, description = load_model(XLMR_RANDOM, num_layers=args.num_layers)
    model.to(args.device).train()
    if frozen:
        model.get_input_embeddings().weight.requires_grad_(False)
    cuda = args.device.startswith("cuda")
    kind = args.optimizer or ("fused" if cuda else "foreach")
    optimizer = optimizer_for(model, kind)
    scaler = torch.amp.GradScaler(args.device, enabled=args.fp16)
    dtype = torch.float16 if args.fp16 else torch.bfloat16 if args.bf16 else None

    def step(batch, timings):
        timed_step(model, optimizer, scaler, batch, args.device, dtype, timings)

    for batch in batches[:2]:
        step(batch, {})
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timings = {}
    for batch in batches[2:2 + args.steps]:
        step(batch, timings)
    top_ops = top_operators(lambda: step(batches[2 + args.steps], {}), cuda)
    ms = {phase: 1000 * sum(values) / len(values) for phase, values in timings.items()}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"description": description, "frozen_word_embeddings": frozen, "optimizer": kind,
            "trainable_parameters": trainable, "ms": ms, "step_ms": sum(ms.values()),
            "pairs_per_s": args.batch_size / (sum(ms.values()) / 1000),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "top_ops": top_ops}


def main():
    args = parse_args()
    import torch

    from reranker_kit.models.pair_encoding import encode_pairs, pad_batch

    tokenizer = train_unigram_tokenizer()  # The one load_model gives the XLM-R shape.
    pairs = sample_pairs()
    needed = (args.steps + 3) * args.batch_size
    # Real pair lengths, shuffled so each step sees a typical mix; labels 1 for every fourth pair, as mined.
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()[:needed]
    encoded = encode_pairs(tokenizer, [pairs[i] for i in order], args.max_length)
    batches = []
    for start in range(0, needed, args.batch_size):
        batch = pad_batch(tokenizer, encoded[start:start + args.batch_size])
        batch["labels"] = torch.tensor([float(i % 4 == 0) for i in range(args.batch_size)])
        batches.append({k: v.to(args.device) for k, v in batch.items()})
    print(machine_line())
    precision = "fp16 + GradScaler" if args.fp16 else "bf16" if args.bf16 else "fp32"
    print(f"device {args.device}, {precision}, batch {args.batch_size}, mean length "
          f"{sum(len(e['input_ids']) for e in encoded) / len(encoded):.0f} tokens, {args.steps} timed steps")
    results = [profile_setting(args, frozen, batches) for frozen in (False, True)]
    print(results[0]["description"])
    rows = [[("frozen" if r["frozen_word_embeddings"] else "trainable"), r["optimizer"],
             f"{r['trainable_parameters'] / 1e6:.0f}M",
             *[f"{r['ms'][phase]:.1f}" for phase in PHASES], f"{r['step_ms']:.1f}", f"{r['pairs_per_s']:.1f}",
             "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"] for r in results]
    print(table(rows, ["word emb.", "AdamW", "trainable", *[f"{p} ms" for p in PHASES], "step ms", "pairs/s", "peak GiB"]))
    trainable, frozen = results
    print(f"trainable / frozen step time: {trainable['step_ms'] / frozen['step_ms']:.2f}x; extra ms by phase: "
          + ", ".join(f"{p} {trainable['ms'][p] - frozen['ms'][p]:+.1f}" for p in PHASES))
    for r in results:
        print(f"\n--- top operators, word embeddings {'frozen' if r['frozen_word_embeddings'] else 'trainable'} ---")
        print(r["top_ops"])
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "top_ops"} for r in results], indent=2))


if __name__ == "__main__":
    main()
