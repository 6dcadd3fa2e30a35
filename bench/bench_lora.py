"""Trainable parameters and peak memory: full fine-tuning against LoRA r=8 and r=16 on the XLM-R-large shape.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bench_lora.py                  # 3 AdamW steps per setting
    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bench_lora.py --steps 2 --json /tmp/lora.json

The model is `xlmr_classifier(XLMR_LARGE_SHAPE)` (the shape of ViRanker and bge-reranker-v2-m3, 568M
parameters, random weights, fp32 on the CPU). Each setting trains it for `--steps` AdamW steps (lr 2e-5,
the kit's fused AdamW) at batch `--batch_size` x `--seq_len` tokens of random ids with random 0/1 labels
and the BCE loss. LoRA is `reranker_kit.models.lora.apply_lora` with its defaults (query, key, value and
attention output; alpha 2r, dropout 0.1; the head trained whole). Every setting runs in a fresh child
process, one after the other, so each peak is its own. Memory in MiB: "peak RSS" is the child's ru_maxrss
(Python, torch, the model, gradients, optimizer state and activations: the whole process's high-water
mark); "build peak" and "after build" the high-water mark and the resident set once the model is built
(and wrapped; random initialisation holds temporaries); the high-water mark is then reset
(/proc/self/clear_refs) so "training peak" is the steps' own, and "training adds" (training peak - after
build) is what the setting's gradients, optimizer state and activations cost. Nothing is saved.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from _common import machine_line, peak_rss_mib, run_child, table

SCRIPT = Path(__file__).resolve()
SETTINGS = ("full", "lora-r8", "lora-r16")


def memory_mib() -> dict[str, float]:
    """This process's resident set now and its high-water mark since the last reset (Linux /proc), in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) / 1024, "peak": int(fields["VmHWM"].split()[0]) / 1024}


def reset_peak() -> bool:
    """Resets the high-water mark (Linux >= 4.0), so the training peak is not the model build's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def build(setting: str):
    """The XLM-R-large-shaped classifier for `setting`: whole for "full", LoRA-wrapped for "lora-rN"."""
    import torch

    from reranker_kit.models.lora import apply_lora
    from reranker_kit.testing import XLMR_LARGE_SHAPE, xlmr_classifier

    torch.manual_seed(0)
    model = xlmr_classifier(XLMR_LARGE_SHAPE)
    if setting.startswith("lora-r"):
        rank = int(setting.removeprefix("lora-r"))
        model = apply_lora(model, r=rank, alpha=2 * rank, dropout=0.1)
    return model


def child(setting: str, steps: int, batch_size: int, seq_len: int) -> dict:
    """Trains one setting for `steps` steps and returns its figures (printed as the last JSON line)."""
    import torch

    from reranker_kit.models.lora import parameter_counts

    started = time.perf_counter()
    model = build(setting)
    counts = parameter_counts(model)
    build_s, after_build = time.perf_counter() - started, memory_mib()
    peak_was_reset = reset_peak()
    generator = torch.Generator().manual_seed(1)
    vocab = 250002
    input_ids = torch.randint(5, vocab, (batch_size, seq_len), generator=generator)
    labels = torch.randint(0, 2, (batch_size,), generator=generator).float()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5, fused=True)
    model.train()
    step_times = []
    for _ in range(steps):
        step_started = time.perf_counter()
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits.view(-1)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - step_started)
    return dict(setting=setting, trainable=counts.trainable, total=counts.total, build_s=build_s,
                build_peak_mib=after_build["peak"], after_build_mib=after_build["rss"],
                training_peak_mib=memory_mib()["peak"] if peak_was_reset else peak_rss_mib(),
                peak_rss_mib=peak_rss_mib(), step_s=step_times)


def report(results: list[dict]) -> str:
    """The side-by-side table, every ratio against full fine-tuning."""
    full = next(result for result in results if result["setting"] == "full")
    rows = []
    for result in results:
        adds = result["training_peak_mib"] - result["after_build_mib"]
        full_adds = full["training_peak_mib"] - full["after_build_mib"]
        rows.append([result["setting"], f"{result['trainable'] / 1e6:.2f}M",
                     f"{result['trainable'] / result['total']:.2%}", f"{result['trainable'] / full['trainable']:.4f}",
                     f"{result['peak_rss_mib']:.0f}", f"{result['peak_rss_mib'] / full['peak_rss_mib']:.2f}",
                     f"{result['build_peak_mib']:.0f}", f"{result['after_build_mib']:.0f}",
                     f"{result['training_peak_mib']:.0f}", f"{adds:.0f}", f"{adds / full_adds:.2f}",
                     " ".join(f"{s:.1f}" for s in result["step_s"])])
    return table(rows, ["setting", "trainable", "share", "x full", "peak RSS MiB", "x full", "build peak",
                        "after build", "training peak", "training adds", "x full", "s per step"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="AdamW steps per setting")
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--seq_len", type=int, default=128, help="tokens per pair (every pair this long)")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.batch_size, args.seq_len)))
        return
    if "full" not in args.settings:
        parser.error("--settings must include full: every ratio is against it")
    print(machine_line(), file=sys.stderr)
    shape = ["--steps", str(args.steps), "--batch_size", str(args.batch_size), "--seq_len", str(args.seq_len)]
    results = []
    for setting in args.settings:
        results.append(run_child(SCRIPT, ["--child", setting, *shape]))
        print(f"{setting}: {results[-1]['child_wall_s']:.0f} s wall", file=sys.stderr)
    print(f"XLM-R-large shape, random weights, fp32, batch {args.batch_size} x {args.seq_len} tokens, "
          f"{args.steps} AdamW steps per setting")
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
