"""The charts the kit draws: training curves of a run, and main.py's metrics against k."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # Training runs on headless machines (Colab, Kaggle, CI).
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(log_history: list[dict], baseline: dict | None, metric: str, path: Path,
                         title: str = "Reranker fine-tuning") -> None:
    """Training loss and the dev ranking metric against the optimizer step, on two axes."""
    loss_points = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    metric_key = f"eval_{metric}"
    metric_points = [(entry["step"], entry[metric_key]) for entry in log_history if metric_key in entry]
    if baseline and metric in baseline:
        metric_points.insert(0, (0, baseline[metric]))
    figure, loss_axis = plt.subplots(figsize=(8, 4.5))
    if loss_points:
        loss_axis.plot(*zip(*loss_points), color="tab:blue", label="training loss")
    loss_axis.set_xlabel("optimizer step")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    metric_axis = loss_axis.twinx()
    if metric_points:
        metric_axis.plot(*zip(*metric_points), color="tab:orange", marker="o", label=f"dev {metric}")
    metric_axis.set_ylabel(f"dev {metric}", color="tab:orange")
    metric_axis.set_ylim(0, 1.05)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def metrics_by_k_figure(table, ks, dataset: str, labels: dict[str, str] | None = None, tag: str | None = None):
    """One panel per metric, one line per ranker: the mean over the file's queries (y) at each cut-off k (x).

    `labels` renames rankers in the legend; `tag` (the file's in-sample mark) joins the title.
    """
    metrics = list(dict.fromkeys(key.split("@")[0] for key in table.index))
    columns = 3
    rows = (len(metrics) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, metric in zip(axes.flat, metrics):
        for ranker in table.columns:
            axis.plot(ks, [table.loc[f"{metric}@{k}", ranker] for k in ks], marker="o",
                      label=(labels or {}).get(ranker, ranker))
        axis.set_title(metric)
        axis.set_xlabel("cut-off k")
        axis.set_ylabel(f"mean {metric}@k")
        axis.set_xticks(ks)
        axis.set_ylim(0, 1.05)
    for axis in list(axes.flat)[len(metrics):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(f"{dataset}: metrics by k (mean over queries, higher is better)" + (f"\n[{tag}]" if tag else ""))
    figure.tight_layout()
    return figure


def plot_metrics_by_k(table, ks, dataset: str, path: Path, labels: dict[str, str] | None = None,
                      tag: str | None = None) -> None:
    """Writes `metrics_by_k_figure` as a PNG."""
    figure = metrics_by_k_figure(table, ks, dataset, labels, tag)
    figure.savefig(path, dpi=110)
    plt.close(figure)
