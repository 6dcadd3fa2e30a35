"""Warm start from a base that already ranks: does fine-tuning on new queries keep, lose or add to it?

The club's real case is a strong pretrained reranker and ~100 new queries. Offline, the stand-in for
"a reranker that already ranks" is a run trained on one half of the sample's train file; it is then
fine-tuned on the other half three ways, and every model is scored on the test file by main.py:

- `plain`: full fine-tuning, `--weight_ensembling off` (the base and the trained weights still compete);
- `wise`: the same with WiSE-FT blends of base and trained weights as candidates (`auto`);
- `lora`: LoRA adapters (rank 8) plus the head, with WiSE-FT.

    python bench/warm_start_experiment.py train /tmp/warm --seeds 1 2 3
    python bench/warm_start_experiment.py report /tmp/warm --seeds 1 2 3

Each comparison with the base is main.py's paired difference on the 30 test queries (interval, p).
"""

import json
import random
import statistics
from pathlib import Path

import pandas as pd

from reranker_kit.run_folder import newest_finished_run
from reranker_kit.testing import REPOSITORY_ROOT, SAMPLE_CORPUS_CSV, SAMPLE_TRAIN_XLSX

from _common import run_kit_script, stage_arguments

TEST_XLSX = REPOSITORY_ROOT / "test_data_proptit.xlsx"
# The quick start's recipe, lighter (one epoch, no corpus sentences) so three seeds fit on 2 CPU cores.
RECIPE = ["--max_seq_length", "128", "--epochs", "1", "--batch_size", "8", "--gradient_accumulation_steps", "1",
          "--pseudo_queries_per_document", "0", "--eval_steps", "20", "--save_steps", "20"]
VARIANTS = {"plain": ["--lr", "5e-5", "--weight_ensembling", "off"], "wise": ["--lr", "5e-5"],
            "lora": ["--lr", "5e-4", "--lora_r", "8"]}
REPORTED = ("hit@3", "mrr@3", "mrr@5")


def split_halves(workdir: Path, seed: int) -> tuple[Path, Path]:
    """The train file's rows in two seeded halves, written as two query files."""
    rows = pd.read_excel(SAMPLE_TRAIN_XLSX, dtype=object)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    paths = workdir / f"seed{seed}.half_a.xlsx", workdir / f"seed{seed}.half_b.xlsx"
    rows.iloc[order[:half]].to_excel(paths[0], index=False)
    rows.iloc[order[half:]].to_excel(paths[1], index=False)
    return paths


def train_once(runs_root: Path, log: Path, *flags: str) -> Path:
    if newest_finished_run(runs_root) is None:
        code = run_kit_script("fine_tune_reranker.py", "--corpus_csv", str(SAMPLE_CORPUS_CSV), *RECIPE, *flags,
                              "--runs_root", str(runs_root), log=log)
        if code != 0:
            raise SystemExit(f"training failed: see {log}")
    return newest_finished_run(runs_root)


def train(workdir: Path, seeds: list[int]) -> None:
    for seed in seeds:
        half_a, half_b = split_halves(workdir, seed)
        base = train_once(workdir / f"seed{seed}" / "base", workdir / f"seed{seed}.base.log", "--base_model",
                          "bundled-minilm", "--lr", "5e-5", "--train_xlsx", str(half_a), "--seed", str(seed))
        for name, flags in VARIANTS.items():
            train_once(workdir / f"seed{seed}" / name, workdir / f"seed{seed}.{name}.log", "--base_model", str(base),
                       "--train_xlsx", str(half_b), "--seed", str(seed), *flags)
        print(f"seed {seed}: trained", flush=True)


def test_report(workdir: Path, seed: int, name: str) -> dict:
    """main.py on the test file: the run against its base (as the pretrained row) and BM25."""
    path = workdir / f"seed{seed}.{name}.test.json"
    if not path.is_file():
        run = newest_finished_run(workdir / f"seed{seed}" / name)
        base = newest_finished_run(workdir / f"seed{seed}" / "base")
        code = run_kit_script("main.py", "--corpus_csv", str(SAMPLE_CORPUS_CSV), "--eval_xlsx", str(TEST_XLSX),
                              "--reranker", str(run), "--pretrained_reranker", str(base), "--fusion_weight", "none",
                              "--max_length", "128", "--runs_root", str(workdir / "reports"), "--output_json",
                              str(path), log=workdir / f"seed{seed}.{name}.test.log")
        if code != 0:
            raise SystemExit(f"main.py failed: see {workdir / f'seed{seed}.{name}.test.log'}")
    return json.loads(path.read_text())


def row_of(report: dict, seed: int, name: str) -> dict:
    metrics = {run["name"]: run["metrics"] for run in report["runs"]}
    pair = {row["metric"]: row for row in report["comparisons"] if row["a"] == "fine_tuned" and row["b"] == "pretrained"}
    info = json.loads((Path(report["fine_tuned_reranker"]) / "training_info.json").read_text())
    weights = info.get("weights") or {}
    return {"seed": seed, "variant": name, "alpha": weights.get("alpha"), "verdict": weights.get("verdict"),
            "base": {key: metrics["pretrained"][key] for key in REPORTED},
            "tuned": {key: metrics["fine_tuned"][key] for key in REPORTED},
            "bm25": {key: metrics["first_stage"][key] for key in REPORTED},
            "vs_base_mrr@3": pair.get("mrr@3")}


def report(workdir: Path, seeds: list[int]) -> None:
    rows = [row_of(test_report(workdir, seed, name), seed, name) for seed in seeds for name in VARIANTS]
    print("| seed | variant | dev choice (a, verdict) | BM25 hit@3 / mrr@3 | base hit@3 / mrr@3 | after hit@3 / mrr@3 | "
          "after - base mrr@3 [95%], p |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        pair = row["vs_base_mrr@3"] or {}
        interval = (f"{pair['mean_difference']:+.3f} [{pair['ci_low']:+.3f}, {pair['ci_high']:+.3f}], p={pair['p_value']:.2f}"
                    if pair.get("ci_low") is not None else "n/a")
        print(f"| {row['seed']} | {row['variant']} | {row['alpha']}, {row['verdict']} | {row['bm25']['hit@3']:.3f} / "
              f"{row['bm25']['mrr@3']:.3f} | {row['base']['hit@3']:.3f} / {row['base']['mrr@3']:.3f} | "
              f"{row['tuned']['hit@3']:.3f} / {row['tuned']['mrr@3']:.3f} | {interval} |")
    print("\nmean ± std over seeds (test file, 30 queries):")
    for name in VARIANTS:
        for side in ("base", "tuned"):
            values = {key: [row[side][key] for row in rows if row["variant"] == name] for key in REPORTED}
            spread = ", ".join(f"{key} {statistics.fmean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0:.3f}"
                               for key, v in values.items())
            print(f"  {name:5s} {side:5s}: {spread}")


def main() -> None:
    args = stage_arguments(__doc__, ("train", "report"))
    (train if args.stage == "train" else report)(args.workdir, args.seeds)


if __name__ == "__main__":
    main()
