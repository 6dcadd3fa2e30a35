"""The model card (README.md) a finished run leaves beside its weights."""

import json
from pathlib import Path


def write_model_card(path: Path, info: dict, dev_metrics: dict) -> None:
    """A README.md beside the weights saying what the model was trained on and how it scored."""
    args = info["arguments"]
    lines = [
        "# Fine-tuned cross-encoder reranker",
        "",
        f"Fine-tuned from `{info['base_model']['name']}` (resolved to `{info['base_model']['resolved']}`) with "
        f"`fine_tune_reranker.py`, loss `{args['loss']}`, {info['data']['train_queries']} training queries "
        f"({info['data']['augmented_train_queries']} with the answers and corpus sentences added as queries) and "
        f"{info['data']['dev_queries']} held-out dev queries from `{Path(args['train_xlsx']).name}` over the "
        f"{info['data']['documents']} documents of `{Path(args['corpus_csv']).name}`.",
        "",
        f"Training pairs: {json.dumps(info['pairs'])}.",
        "",
        "Load it with `rerank.Reranker(model_name=\"<this folder>\")` or FlagEmbedding's "
        "`FlagReranker(\"<this folder>\")`; both give the same scores.",
        "",
    ]
    if dev_metrics.get("baseline"):
        keys = [key for key in dev_metrics["baseline"] if key in dev_metrics]
        lines += ["## Dev metrics (reranking the first stage's candidates)", "",
                  "| metric | before fine-tuning | after |", "|---|---|---|"]
        lines += [f"| {key} | {dev_metrics['baseline'][key]:.4f} | {dev_metrics[key]:.4f} |" for key in keys]
        lines.append("")
    else:
        lines += ["No dev queries were held out (`--dev_ratio 0`), so no dev metric was measured.", ""]
    lines += [f"Wall time {info['wall_time_s']:.1f} s on {info['device']}.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
