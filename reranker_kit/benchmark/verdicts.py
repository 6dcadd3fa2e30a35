"""main.py's statements about what was measured: each follows its paired interval, never a recorded word.

A difference is a **gain** only when its 95% paired interval lies above zero (and the randomization test
agrees: the comparison's `significant`), a **loss** when it lies below, and otherwise **within noise**: on
19 dev queries a +0.178 mean with the interval [-0.037, +0.392] is not a gain. Two kinds of statement:

- the run's own dev record (dev_metrics.json): which weights it kept, and what its trained-minus-base
  interval says about them (runs of older kits recorded other words; the interval is read again);
- main.py's own, from the paired comparisons it computed on each file, at one headline metric (mrr at the
  middle cut-off), the files with the fewest training queries first; an in-sample file's statement says so.
"""

from pathlib import Path

from reranker_kit.benchmark.training_queries import FileOverlap
from reranker_kit.finetune.verdict import GAIN, LOSS, finding
from reranker_kit.finetune.verdict import WITHIN_NOISE as NOISE
from reranker_kit.run_folder import stored_verdict


def interval_text(comparison: dict) -> str:
    low, high = comparison.get("ci_low"), comparison.get("ci_high")
    bounds = "[-inf, +inf]" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"
    return f"{comparison['mean_difference']:+.3f} {bounds}"


def headline_metric(ks) -> str:
    """mrr at the middle cut-off (mrr@5 for k = 3 5 7), the metric training chooses checkpoints on by default."""
    return f"mrr@{sorted(ks)[len(ks) // 2]}"


def run_statement(run_dir: Path) -> dict | None:
    """What the run's dev_metrics.json records of its weights against its base, read by the interval rule.

    Its `verdict` is the trained-minus-base interval's finding (`finetune.verdict.finding`), beside the
    weights the run kept: a kept model on an interval that covers zero reads "within noise" whatever the
    run wrote.
    """
    record = stored_verdict(run_dir) if run_dir.is_dir() else None
    if record is None:
        return None
    pair, kept = record["trained_vs_base"], f"the run kept the {record['saved']} weights"
    if pair is None or pair.get("mean_difference") is None:  # Runs written before the interval was recorded.
        word = NOISE
        return {"run": str(run_dir), "saved": record["saved"], "recorded_verdict": record["verdict"], "verdict": word,
                "finding": NOISE, "text": f"{run_dir}: verdict {word}: {kept} ({record['detail']}); it recorded no "
                                          "paired interval, so no gain is shown"}
    result = finding(pair)
    word = result
    meaning = {GAIN: "the interval lies above 0", LOSS: "the interval lies below 0: the trained weights ranked below "
               "the base", NOISE: "the interval covers 0: not a measured gain"}[result]
    queries = f" on its {pair['n_queries']} dev queries" if pair.get("n_queries") else " on its dev queries"
    return {"run": str(run_dir), "saved": record["saved"], "recorded_verdict": record["verdict"], "verdict": word,
            "finding": result, "metric": record["metric"],
            **{key: pair.get(key) for key in ("mean_difference", "ci_low", "ci_high", "n_queries")},
            "text": f"{run_dir}: verdict {word}: {kept}; trained - base dev {record['metric']} {interval_text(pair)}"
                    f"{queries} ({meaning})"}


def file_statements(comparisons: list[dict], overlaps: dict[str, FileOverlap], metric: str) -> list[dict]:
    """One statement per compared pair and file at `metric`; the files with the fewest training queries first."""
    rows = [row for row in comparisons if row["metric"] == metric]
    order = sorted(dict.fromkeys(row["dataset"] for row in rows),
                   key=lambda name: overlaps[name].trained / overlaps[name].queries if name in overlaps else 0.0)
    statements = []
    for dataset in order:
        overlap = overlaps.get(dataset)
        in_sample = overlap is not None and overlap.in_sample
        for row in (row for row in rows if row["dataset"] == dataset):
            result = finding(row)
            words = {GAIN: f"gain ({row['a']} above {row['b']})", LOSS: f"loss ({row['a']} below {row['b']})",
                     NOISE: "within noise"}[result]
            where = f"{dataset} ({overlap.trained} of {overlap.queries} queries trained on)" if in_sample else dataset
            statements.append({
                "dataset": dataset, "a": row["a"], "b": row["b"], "metric": metric, "finding": result,
                "in_sample": in_sample, "text": f"{where}: {row['a']} - {row['b']} {metric} {interval_text(row)}, "
                                                f"p {row['p_value']:.3f}, {row['n_queries']} queries: {words}"})
    return statements


def recommendation(comparisons: list[dict], overlaps: dict[str, FileOverlap], metric: str) -> dict | None:
    """Which row to use on new queries: judged on the files the run never trained on, at `metric`.

    The fused row if it gains over the first stage on every such file (it is guarded toward the first stage),
    else the reranker alone if it does, else the first stage: a reranker that adds nothing measurable is not
    worth its cost. None without a reranker to judge; no recommendation from in-sample files alone.
    """
    rows = [row for row in comparisons if row["metric"] == metric and row["b"] == "first_stage"]
    if not rows:
        return None
    files = sorted({row["dataset"] for row in rows if not (row["dataset"] in overlaps and overlaps[row["dataset"]].in_sample)})
    if not files:
        return {"row": None, "text": "recommended: none yet; every evaluated file holds queries the run trained on, "
                                     "so none can tell whether the reranker helps new queries: evaluate a held-out file"}
    for candidate in sorted({row["a"] for row in rows}, key=lambda name: (not name.startswith("fused_"), name)):
        judged = [row for row in rows if row["a"] == candidate and row["dataset"] in files]
        if len(judged) == len(files) and all(finding(row) == GAIN for row in judged):
            evidence = "; ".join(f"{row['dataset']}: {candidate} - first_stage {metric} {interval_text(row)}"
                                 for row in judged)
            return {"row": candidate, "text": f"recommended: {candidate}, a gain over the first stage on every file "
                                              f"the run never trained on ({evidence})"}
    evidence = "; ".join(f"{row['dataset']}: {row['a']} - first_stage {metric} {interval_text(row)}"
                         for row in rows if row["dataset"] in files)
    return {"row": "first_stage", "text": "recommended: first_stage alone; no reranker row gains over it beyond noise "
                                          f"on the files the run never trained on ({evidence})"}


def verdict(run_dir: Path | None, comparisons: list[dict], overlaps: dict[str, FileOverlap], ks) -> dict:
    """The report's "verdict": the run's dev record, main.py's own statements and the row to use, each with its text."""
    metric = headline_metric(ks)
    return {"rule": "gain only where the 95% paired interval excludes 0 and p < 0.05, otherwise within noise",
            "metric": metric, "run": run_statement(run_dir) if run_dir is not None else None,
            "statements": file_statements(comparisons, overlaps, metric),
            "recommendation": recommendation(comparisons, overlaps, metric),
            "notes": [overlap.note() for overlap in overlaps.values() if overlap.in_sample or overlap.dev]}
