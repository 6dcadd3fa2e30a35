"""README's quick start, once per seed, scored on the test file as main.py reports it (bench/QUALITY.md).

This is the table of #12 replayed on the sample: train on train_data_proptit.xlsx (whose queries are
harder for BM25 than the test file's, as in the club's real data), let main.py apply the run's own
fusion.json, and compare BM25, the fine-tuned reranker and the fused ranking on the unseen test queries.

    python bench/quick_start_seeds.py train /tmp/quick_start --seeds 1 2 3     # one CPU run per seed
    python bench/quick_start_seeds.py report /tmp/quick_start --seeds 1 2 3    # main.py per run, then a table

`train` skips seeds whose run finished, so it can be stopped and started again; the seeds can run in
parallel as separate commands.
"""

import json
import statistics
from pathlib import Path

from reranker_kit.fusion import best_setting, guarded_settings, parse_setting, setting_key
from reranker_kit.run_folder import newest_finished_run
from reranker_kit.testing import CPU_QUICK_START, REPOSITORY_ROOT, SAMPLE_CORPUS_CSV, SAMPLE_TRAIN_XLSX

from _common import run_kit_script, stage_arguments

TEST_XLSX = REPOSITORY_ROOT / "test_data_proptit.xlsx"
REPORTED = ("hit@3", "mrr@3", "hit@5", "mrr@5")


def train(workdir: Path, seeds: list[int]) -> None:
    for seed in seeds:
        runs_root = workdir / f"seed{seed}"
        if newest_finished_run(runs_root):
            print(f"{runs_root.name}: finished already", flush=True)
            continue
        code = run_kit_script("fine_tune_reranker.py", "--corpus_csv", str(SAMPLE_CORPUS_CSV), "--train_xlsx",
                              str(SAMPLE_TRAIN_XLSX), *CPU_QUICK_START, "--seed", str(seed), "--runs_root",
                              str(runs_root), log=workdir / f"seed{seed}.train.log")
        print(f"{runs_root.name}: exit {code}", flush=True)


def old_rule_weight(run_dir: Path) -> float:
    """The weight round 1's rule would have applied: min-max, best dev mrr@5 under the guard, no shrinking."""
    by_setting = json.loads((run_dir / "fusion.json").read_text())["dev_metrics_by_setting"]
    minmax = {key: means for key, means in by_setting.items() if parse_setting(key)[0] == "minmax"}
    return parse_setting(best_setting(guarded_settings(minmax), minmax, "mrr@5"))[1]


def main_report(workdir: Path, seed: int, run_dir: Path, name: str, *flags: str) -> dict:
    """main.py's JSON report of the test file for one run (kept beside the runs, so a rerun reads it)."""
    report_path = workdir / f"seed{seed}.{name}.json"
    if not report_path.is_file():
        code = run_kit_script("main.py", "--corpus_csv", str(SAMPLE_CORPUS_CSV), "--eval_xlsx", str(TEST_XLSX),
                              "--reranker", str(run_dir), "--pretrained_reranker", "none", "--max_length", "128",
                              "--runs_root", str(workdir / "reports"), "--output_json", str(report_path), *flags,
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
    args = stage_arguments(__doc__, ("train", "report"))
    if args.stage == "train":
        train(args.workdir, args.seeds)
    else:
        report(args.workdir, args.seeds)


if __name__ == "__main__":
    main()
