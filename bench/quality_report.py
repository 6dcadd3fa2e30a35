"""Collects the cross-validation results of bench/quality_cv.sh into Markdown tables for QUALITY.md.

    python bench/quality_report.py /tmp/quality
"""

import json
import sys
from pathlib import Path

from reranker_kit.fusion import GUARDED_METRICS
from reranker_kit.metrics import CUTOFFS

KEYS = [f"{metric}@{k}" for metric in GUARDED_METRICS for k in CUTOFFS]


def main(workdir: Path) -> None:
    rows = []
    for recipe_dir in sorted(path for path in workdir.iterdir() if path.is_dir()):
        results = sorted(recipe_dir.glob("reranker-cv-*/cv_results.json"))
        if not results:
            continue
        summary = json.loads(results[-1].read_text(encoding="utf-8"))["summary"]
        for ranker in ("first_stage", "pretrained", "fine_tuned", "fused"):
            label = ranker if ranker != "fused" else f"fused ({', '.join(summary['fused']['settings'])})"
            cells = [f"{summary[ranker][key]['mean']:.3f} ± {summary[ranker][key]['std']:.3f}" for key in KEYS]
            rows.append(f"| {recipe_dir.name} | {label} | " + " | ".join(cells) + " |")
    print("| recipe | ranker | " + " | ".join(KEYS) + " |")
    print("|---|---|" + "---|" * len(KEYS))
    print("\n".join(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
