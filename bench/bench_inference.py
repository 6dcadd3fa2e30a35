"""Reranker inference: every pair padded to max_length against the project's length-sorted dynamic batching.

    python bench/bench_inference.py                                   # bundled MiniLM, 300 sample pairs, CPU
    python bench/bench_inference.py --max_pairs 0                     # all 2,000 pairs (100 queries x top 20)
    python bench/bench_inference.py --model xlmr-large-random --num_layers 2 --max_pairs 64 --batch_size 16
    python bench/bench_inference.py --model xlmr-large-random --device cuda --max_pairs 0   # a GPU session

Both paths score the same (query, document) pairs with the same model object in one process:
- padded: the pairs encoded as the project encodes them (`pair_encoding.encode_pairs`), each padded to
  `--max_length` tokens, batched in the order given (the seed's way);
- dynamic: `pair_encoding.score_pairs`, exactly what `rerank.Reranker.compute_score` runs: pairs sorted by
  length, each batch padded to its longest pair.
Pairs are real: each sample train query with its BM25 top `--top_n` documents (a seeded random subset of
`--max_pairs` of them; the subset keeps the length distribution). Tokenizing is inside both timings.
The runs alternate (dynamic, padded, dynamic, padded ...) `--repeats` times after one untimed warm-up batch
each, and pairs/s is the total over the repeats.
"""

import argparse
import time

import numpy as np
import torch

from _common import XLMR_RANDOM, load_model, machine_line, sample_pairs, table


def padded_scores(model, tokenizer, pairs, max_length: int, batch_size: int) -> tuple[np.ndarray, int]:
    """Seed-style scoring: every pair padded to max_length, batches in input order. Returns (scores, tokens)."""
    from reranker_kit.models.pair_encoding import _silence_pad_advice, encode_pairs

    device = next(model.parameters()).device
    encoded = encode_pairs(tokenizer, pairs, max_length)
    _silence_pad_advice(tokenizer)
    scores = np.empty(len(pairs), dtype=np.float32)
    tokens = 0
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            chunk = encoded[start:start + batch_size]
            features = {key: [item[key] for item in chunk] for key in chunk[0]}
            batch = tokenizer.pad(features, padding="max_length", max_length=max_length, return_tensors="pt")
            tokens += batch["input_ids"].numel()
            logits = model(**{key: value.to(device) for key, value in batch.items()}).logits
            scores[start:start + len(chunk)] = logits.view(-1).float().cpu().numpy()
    return scores, tokens


def dynamic_tokens(tokenizer, pairs, max_length: int, batch_size: int) -> tuple[int, int, float]:
    """(real tokens, tokens computed by length-sorted dynamic batches, mean pair length)."""
    from reranker_kit.models.pair_encoding import encode_pairs

    lengths = np.array(sorted((len(item["input_ids"]) for item in encode_pairs(tokenizer, pairs, max_length)),
                              reverse=True))
    computed = sum(int(lengths[start]) * len(lengths[start:start + batch_size])
                   for start in range(0, len(lengths), batch_size))
    return int(lengths.sum()), computed, float(lengths.mean())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled-minilm", help=f"bundled-minilm, {XLMR_RANDOM}, or a local model folder.")
    parser.add_argument("--num_layers", type=int, help=f"Override the 24 layers of {XLMR_RANDOM} (CPU validation).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fp32", action="store_true", help="Full precision on a GPU too (default there: fp16, as Reranker).")
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--top_n", type=int, default=20, help="BM25 candidates per sample train query.")
    parser.add_argument("--max_pairs", type=int, default=300, help="Random subset of the pairs (0: all of them).")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (CPU).")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def chosen_pairs(top_n: int, max_pairs: int, seed: int) -> tuple[list, int]:
    """(the pairs to score, how many there were before the seeded random subset)."""
    pairs = sample_pairs(top_n)
    total_pairs = len(pairs)
    if 0 < max_pairs < len(pairs):
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False))
        pairs = [pairs[i] for i in keep]
    return pairs, total_pairs


def place_model(model, device_name: str, fp32: bool) -> tuple[torch.device, bool]:
    """Moves the model to its device in eval mode, in fp16 on a GPU unless fp32 is asked. Returns (device, half)."""
    device = torch.device(device_name)
    half = device.type == "cuda" and not fp32
    if half:
        model.half()
    model.to(device).eval()
    return device, half


def time_paths(model, tokenizer, pairs, max_length: int, batch_size: int, repeats: int):
    """Scores the pairs both ways, alternating, after one untimed warm-up batch each.

    Returns (seconds per path summed over the repeats, scores per path, tokens the padded path computed).
    """
    from reranker_kit.models.pair_encoding import score_pairs

    warm = pairs[:min(len(pairs), batch_size)]
    score_pairs(model, tokenizer, warm, max_length, batch_size)
    padded_scores(model, tokenizer, warm, max_length, batch_size)

    elapsed = {"dynamic": 0.0, "padded": 0.0}
    for repeat in range(repeats):
        started = time.perf_counter()
        dynamic = score_pairs(model, tokenizer, pairs, max_length, batch_size)
        dynamic_s = time.perf_counter() - started
        started = time.perf_counter()
        padded, padded_computed = padded_scores(model, tokenizer, pairs, max_length, batch_size)
        padded_s = time.perf_counter() - started
        elapsed["dynamic"] += dynamic_s
        elapsed["padded"] += padded_s
        print(f"repeat {repeat + 1}: dynamic {dynamic_s:.2f} s, padded {padded_s:.2f} s, "
              f"ratio {padded_s / dynamic_s:.2f}x", flush=True)
    print()
    return elapsed, {"dynamic": dynamic, "padded": padded}, padded_computed


def report(elapsed: dict, scores: dict, repeats: int, real_tokens: int, computed: dict) -> None:
    """The comparison table, the score agreement and the verdict against the 1.3x target."""
    dynamic, padded = scores["dynamic"], scores["padded"]
    scored = len(dynamic) * repeats
    rate = {name: scored / seconds for name, seconds in elapsed.items()}
    rows = [
        ["padded to max_length (seed)", f"{elapsed['padded']:.2f}", f"{rate['padded']:.1f}", computed["padded"],
         f"{real_tokens / computed['padded']:.1%}", "1.00x"],
        ["length-sorted dynamic (ours)", f"{elapsed['dynamic']:.2f}", f"{rate['dynamic']:.1f}", computed["dynamic"],
         f"{real_tokens / computed['dynamic']:.1%}", f"{rate['dynamic'] / rate['padded']:.2f}x"],
    ]
    print(table(rows, ["path", "seconds", "pairs/s", "tokens computed", "real share", "vs padded"]))
    diff = float(np.max(np.abs(dynamic - padded)))
    print(f"\nsame scores: max |dynamic - padded| = {diff:.2e} over {len(dynamic)} pairs "
          f"(score range {float(dynamic.min()):.3f}..{float(dynamic.max()):.3f})")
    ratio = rate["dynamic"] / rate["padded"]
    verdict = f"MET ({ratio / 1.3:.2f}x the target)" if ratio >= 1.3 else f"MISSED ({ratio:.2f}x < 1.3x)"
    print(f"target length-sorted >= 1.3x padded: {ratio:.2f}x -> {verdict}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from reranker_kit.models.pair_encoding import position_limit

    pairs, total_pairs = chosen_pairs(args.top_n, args.max_pairs, args.seed)
    torch.manual_seed(args.seed)
    model, tokenizer, description = load_model(args.model, args.num_layers)
    device, half = place_model(model, args.device, args.fp32)
    max_length = min(args.max_length, position_limit(model.config))
    real_tokens, dynamic_computed, mean_length = dynamic_tokens(tokenizer, pairs, max_length, args.batch_size)

    print(f"Inference benchmark; {machine_line()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"model: {description}; device {device} ({'fp16' if half else 'fp32'}"
          f"{', ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''})")
    print(f"pairs: {len(pairs)} of {total_pairs} (sample train queries x BM25 top {args.top_n}), mean length "
          f"{mean_length:.0f} tokens, max_length {max_length}, batch {args.batch_size}, repeats {args.repeats}\n")

    elapsed, scores, padded_computed = time_paths(model, tokenizer, pairs, max_length, args.batch_size, args.repeats)
    report(elapsed, scores, args.repeats, real_tokens, {"padded": padded_computed, "dynamic": dynamic_computed})


if __name__ == "__main__":
    main()
