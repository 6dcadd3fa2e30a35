"""The CPU-sized defaults of both training CLIs: seconds per optimizer step and peak memory, side by side.

    OMP_NUM_THREADS=2 python bench/bench_cpu_defaults.py            # both CLIs, bundled-e5 and bundled-minilm
    python bench/bench_cpu_defaults.py --max_steps 8 --models bundled-e5

Each row runs the CLI as a user would (`python fine_tune_*.py --base_model M`, every other setting its default,
so on a machine without a GPU the CPU sizes apply) on the shipped sample with `--dev_ratio 0` (no dev
evaluation, so the time is the steps') for `--max_steps` steps, in a child process, one after the other in
this invocation. Variants change one setting against those defaults (word embeddings trainable; activations
recomputed in the backward pass, which trades time for the memory the activations take). It prints
seconds per step from the Trainer's `train_runtime`, the child's peak RSS (training_info.json), and each
row's ratio to the first row of its CLI.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
CLIS = {"embedder": "fine_tune_embedder.py", "reranker": "fine_tune_reranker.py"}
VARIANTS = {"CPU defaults": [], "word embeddings trainable": ["--no-freeze_word_embeddings"],
            "gradient checkpointing": ["--gradient_checkpointing"]}


def run(cli: str, model: str, extra: list[str], max_steps: int, workdir: Path) -> dict:
    runs_root = workdir / f"{cli}-{model}-{len(list(workdir.iterdir()))}"
    command = [sys.executable, str(REPOSITORY / CLIS[cli]), "--base_model", model, "--dev_ratio", "0",
               "--max_steps", str(max_steps), "--logging_steps", "1", "--runs_root", str(runs_root), *extra]
    finished = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True)
    if finished.returncode != 0:
        return {"error": finished.stderr.strip().splitlines()[-1]}
    (run_dir,) = runs_root.glob("*-finetuned-*")
    info = json.loads((run_dir / "training_info.json").read_text())
    metrics = json.loads((run_dir / "train_results.json").read_text())
    sized = next((line.split("CPU-sized settings ")[1] for line in finished.stderr.splitlines()
                  if "CPU-sized settings" in line), "none")
    return {"s_per_step": metrics["train_runtime"] / info["final_step"], "peak_gib": info["peak_memory_gib"]["process_rss"],
            "trainable": info["base_model"]["trainable_parameters"], "sized": sized}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_steps", type=int, default=6)
    parser.add_argument("--models", nargs="+", default=["bundled-e5", "bundled-minilm"])
    settings = parser.parse_args()
    print(f"{'CLI':9} {'model':15} {'variant':27} {'s/step':>7} {'ratio':>6} {'peak GiB':>9} {'trainable':>11}")
    with tempfile.TemporaryDirectory() as folder:
        for cli in CLIS:
            first = None
            for model in settings.models:
                for variant, extra in VARIANTS.items():
                    if model == "bundled-minilm" and extra:
                        continue  # MiniLM's vocabulary is small: it is never frozen by default.
                    row = run(cli, model, extra, settings.max_steps, Path(folder))
                    if "error" in row:
                        print(f"{cli:9} {model:15} {variant:27} failed: {row['error']}")
                        continue
                    first = first or row["s_per_step"]
                    print(f"{cli:9} {model:15} {variant:27} {row['s_per_step']:7.1f} {row['s_per_step'] / first:6.2f} "
                          f"{row['peak_gib']:9.2f} {row['trainable']:11,d}")
                    if variant == "CPU defaults":
                        print(f"{'':9} CPU sizes chosen: {row['sized']}")


if __name__ == "__main__":
    main()
