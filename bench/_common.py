"""Helpers shared by the benchmark scripts: paths, sample data, models built offline, tables, memory.

Nothing here downloads anything. Models come from `reranker_kit.models.loading.load_cross_encoder` (the
bundled MiniLM or a local folder) or are built from a config with random weights (`xlmr-large-random`).
Run the scripts after `pip install -e .`, so that `reranker_kit` imports from anywhere.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from reranker_kit.testing import REPOSITORY_ROOT as ROOT
from reranker_kit.testing import XLMR_LARGE_SHAPE, train_unigram_tokenizer, xlmr_classifier

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "newly initialized head" advice in the tables

CORPUS_CSV = ROOT / "CLB_PROPTIT.csv"
TRAIN_XLSX = ROOT / "train_data_proptit.xlsx"
XLMR_RANDOM = "xlmr-large-random"


def load_sample():
    """(corpus {id: text}, train queries) of the shipped sample data."""
    from reranker_kit.data.loading import load_corpus, load_queries

    corpus = load_corpus(CORPUS_CSV)
    return corpus, load_queries(TRAIN_XLSX, corpus)


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_model(name: str, num_layers: int | None = None, attn_implementation: str | None = None):
    """(model, tokenizer, description) in fp32 on the CPU.

    name: `bundled-minilm`, a local model folder, or `xlmr-large-random` (XLM-RoBERTa-large shape, random
    weights; `num_layers` overrides its 24 layers so it can run on a CPU).
    """
    if name == XLMR_RANDOM:
        shape = dict(XLMR_LARGE_SHAPE)
        if num_layers:
            shape["num_hidden_layers"] = num_layers
        model = xlmr_classifier(shape, attn_implementation)
        tokenizer = train_unigram_tokenizer()
        description = (f"{XLMR_RANDOM} ({shape['num_hidden_layers']} layers, hidden 1024, vocab 250002, random "
                       f"weights; Unigram tokenizer trained on the sample)")
    else:
        from reranker_kit.basics.model_files import resolve_model_name
        from reranker_kit.models.loading import load_cross_encoder

        if attn_implementation:
            # BERT-family classes fix their attention at construction, so ask for it while loading; otherwise
            # this is what load_cross_encoder does (same order, so the same seed gives the same fresh head).
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            resolved = resolve_model_name(name)
            tokenizer = AutoTokenizer.from_pretrained(resolved)
            model = AutoModelForSequenceClassification.from_pretrained(resolved, num_labels=1,
                                                                       attn_implementation=attn_implementation)
        else:
            model, tokenizer, resolved = load_cross_encoder(name)
        description = f"{name} ({resolved})"
    parameters = sum(p.numel() for p in model.parameters())
    return model, tokenizer, f"{description}, {parameters / 1e6:.1f}M parameters"


def sample_pairs(top_n: int = 20, method: str = "bm25"):
    """Real (query, document) pairs: each sample train query with its first-stage top `top_n` documents."""
    from reranker_kit.retrieval import LexicalIndex

    corpus, queries = load_sample()
    doc_ids = list(corpus)
    index = LexicalIndex([corpus[doc_id] for doc_id in doc_ids], method=method)
    positions, _ = index.top_k([query.text for query in queries], top_n)
    return [(query.text, corpus[doc_ids[p]]) for query, row in zip(queries, positions) for p in row]


def table(rows: list[list], header: list[str]) -> str:
    """A plain fixed-width table."""
    cells = [[str(cell) for cell in row] for row in [header] + rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row))
             for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run_kit_script(name: str, *flags: str, log: Path) -> int:
    """Runs one of the kit's scripts (fine_tune_reranker.py, main.py) offline, its output into `log`; its exit code."""
    with open(log, "w") as output:
        # This module's import set HF_HUB_OFFLINE and TOKENIZERS_PARALLELISM; the child inherits them.
        return subprocess.run([sys.executable, str(ROOT / name), *flags], stdout=output,
                              stderr=subprocess.STDOUT).returncode


def stage_arguments(doc: str, stages: tuple[str, ...]):
    """`SCRIPT STAGE WORKDIR [--seeds ...]`, the command line of the multi-seed experiments; WORKDIR is created."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("stage", choices=stages)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def run_child(script: Path, args: list[str], timeout: float | None = None) -> dict:
    """Runs `script args` in a fresh Python process and returns the JSON its last stdout line holds.

    Each measured case runs in its own child so its ru_maxrss (a process-wide high-water mark) is its own.
    """
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if result.returncode != 0:
        raise RuntimeError(f"child {args} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    payload = json.loads(lines[-1])
    payload["child_wall_s"] = time.perf_counter() - started
    return payload


def machine_line() -> str:
    import platform

    line = f"{platform.python_version()} on {os.cpu_count()} CPU cores ({platform.machine()})"
    try:
        load = os.getloadavg()
        line += f", load average {load[0]:.2f} at start"
    except OSError:
        pass
    return line
