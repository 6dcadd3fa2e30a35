"""README's quick start, once per seed, scored on the test file as main.py reports it (bench/QUALITY.md).

This is the table of #12 replayed on the sample: train on train_data_proptit.xlsx (whose queries are
harder for BM25 than the test file's, as in the club's real data), let main.py apply the run's own
fusion.json, and compare BM25, the fine-tuned reranker and the fused ranking on the unseen test queries.

    python bench/quick_start_seeds.py train /tmp/quick_start --seeds 1 2 3     # one CPU run per seed
    python bench/quick_start_seeds.py report /tmp/quick_start --seeds 1 2 3    # main.py per run, then a table

`train` skips seeds whose run finished, so it can be stopped and started again; the seeds can run in
parallel as separate commands.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from reranker_kit.fusion import FUSION_WEIGHTS, GUARDED_METRICS, setting_key
from reranker_kit.metrics import CUTOFFS
from reranker_kit.run_folder import newest_finished_run
from reranker_kit.testing import REPOSITORY_ROOT, SAMPLE_CORPUS_CSV, SAMPLE_TRAIN_XLSX

TEST_XLSX = REPOSITORY_ROOT / "test_data_proptit.xlsx"
# README's quick start, word for word, plus the seed and where the run goes.
QUICK_START = ["--base_model", "bundled-minilm", "--max_seq_length", "128", "--epochs", "2", "--lr", "5e-5",
               "--batch_size", "8", "--gradient_accumulation_steps", "1"]
REPORTED = ("hit@3", "mrr@3", "hit@5", "mrr@5")
ENVIRONMENT = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def script(name: str, *flags: str, log: Path) -> int:
    with open(log, "w") as output:
        return subprocess.run([sys.executable, str(REPOSITORY_ROOT / name), *flags], stdout=output,
                              stderr=subprocess.STDOUT, env=ENVIRONMENT).returncode


def train(workdir: Path, seeds: list[int]) -> None:
    for seed in seeds:
        runs_root = workdir / f"seed{seed}"
        if newest_finished_run(runs_root):
            print(f"{runs_root.name}: finished already", flush=True)
            continue
        code = script("fine_tune_reranker.py", "--corpus_csv", str(SAMPLE_CORPUS_CSV), "--train_xlsx",
                      str(SAMPLE_TRAIN_XLSX), *QUICK_START, "--seed", str(seed), "--runs_root", str(runs_root),
                      log=workdir / f"seed{seed}.train.log")
        print(f"{runs_root.name}: exit {code}", flush=True)


def old_rule_weight(run_dir: Path) -> float:
    """The weight round 1's rule would have applied: min-max, best dev mrr@5 under the guard, no shrinking."""
    by_setting = json.loads((run_dir / "fusion.json").read_text())["dev_metrics_by_setting"]
    first_stage = by_setting[setting_key("minmax", 0.0)]
    guarded = [f"{name}@{k}" for name in GUARDED_METRICS for k in CUTOFFS]
    safe = [weight for weight in FUSION_WEIGHTS if all(
        by_setting[setting_key("minmax", weight)][name] >= first_stage[name] - 1e-12 for name in guarded)]
    return max(safe, key=lambda weight: (by_setting[setting_key("minmax", weight)]["mrr@5"], -weight))


def main_report(workdir: Path, seed: int, run_dir: Path, name: str, *flags: str) -> dict:
    """main.py's JSON report of the test file for one run (kept beside the runs, so a rerun reads it)."""
    report_path = workdir / f"seed{seed}.{name}.json"
    if not report_path.is_file():
        code = script("main.py", "--corpus_csv", str(SAMPLE_CORPUS_CSV), "--eval_xlsx", str(TEST_XLSX), "--reranker",
                      str(run_dir), "--pretrained_reranker", "none", "--max_length", "128", "--runs_root",
                      str(workdir / "reports"), "--output_json", str(report_path), *flags,
                      log=workdir / f"seed{seed}.{name}.log")
        if code != 0:
            raise SystemExit(f"main.py failed for seed {seed}: see {workdir / f'seed{seed}.{name}.log'}")
    return json.loads(report_path.read_text())


def test_rows(workdir: Path, seed: int) -> dict[str, dict] | None:
    """{ranker: its row on the test file} for one seed's run: main.py as shipped, and with the old rule's weight."""
    run_dir = newest_finished_run(workdir / f"seed{seed}")
    if run_dir is None:
        return None
    shipped = main_report(workdir, seed, run_dir, "default")
    rows = {("fused" if row["name"].startswith("fused") else row["name"]): row for row in shipped["runs"]}
    best = json.loads((run_dir / "fusion.json").read_text())["best_setting"]
    rows["fused"]["setting"] = f"{shipped['fusion_method']}:{shipped['fusion_weight']:.1f} (best on dev {best})"
    weight = old_rule_weight(run_dir)
    old = main_report(workdir, seed, run_dir, f"old_rule_minmax_{weight:.1f}", "--fusion_weight", str(weight),
                      "--fusion_method", "minmax")
    rows["fused, old rule"] = next(row for row in old["runs"] if row["name"].startswith("fused"))
    rows["fused, old rule"]["setting"] = setting_key("minmax", weight)
    return rows


def report(workdir: Path, seeds: list[int]) -> None:
    per_seed = {seed: rows for seed in seeds if (rows := test_rows(workdir, seed)) is not None}
    print(f"\n### test_data_proptit.xlsx, README quick start ({len(per_seed)} seeds: {list(per_seed)}; mean ± std)\n")
    print("| ranker | " + " | ".join(REPORTED) + " |")
    print("|---|" + "---|" * len(REPORTED))
    for ranker in ("first_stage", "fine_tuned", "fused, old rule", "fused"):
        values = {name: [rows[ranker]["metrics"][name] for rows in per_seed.values()] for name in REPORTED}
        cells = [f"{statistics.fmean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.3f}" for v in values.values()]
        print(f"| {ranker} | " + " | ".join(cells) + " |")
    print()
    for seed, rows in per_seed.items():
        fused, first = rows["fused"]["metrics"], rows["first_stage"]["metrics"]
        queries = rows["first_stage"]["queries"]
        print(f"seed {seed}: fusion {rows['fused']['setting']}, old rule {rows['fused, old rule']['setting']}; "
              "fused - BM25 on the test file: "
              + ", ".join(f"{name} {fused[name] - first[name]:+.3f}" for name in REPORTED)
              + f" (one query = {1 / queries:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("train", "report"))
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.stage == "train":
        train(args.workdir, args.seeds)
    else:
        report(args.workdir, args.seeds)


if __name__ == "__main__":
    main()
