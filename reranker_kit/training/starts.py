"""What each start of a run was asked to train, kept in the run folder's run_started.json.

A resume must train the same run: a run resumed with another learning rate, seed or query file would
report "before/after" numbers that belong to no single recipe. The first start records its flags and
the content hashes of its data files; a resume is compared with that record and refused with the
differences named. Flags that do not change what is trained (evaluation batch size, logging, tracking,
where outputs go, the hardware's precision) may differ. Every start is kept, in order.
"""

import json
import logging
from datetime import datetime
from pathlib import Path

from reranker_kit.basics.errors import CheckpointError
from reranker_kit.basics.files import file_sha256, write_json_atomic
from reranker_kit.training.config import TrainingConfig

logger = logging.getLogger(__name__)

STARTS_FILE = "run_started.json"
# Compared by content, not by path: a moved file is the same data, an edited one is not.
DATA_FILE_FLAGS = ("corpus_csv", "train_xlsx", "candidates")
# Flags that leave the trained weights as they are: how fast or where a run writes, what it logs, the
# machine it runs on (a run stopped on a GPU may be finished on another one, or on the CPU).
MAY_DIFFER = frozenset({
    "eval_batch_size", "logging_steps", "report_to", "save_steps", "save_total_limit", "cv_keep_models",
    "output_dir", "runs_root", "resume_from_checkpoint", "push_to_hub", "hub_model_id", "hub_private_repo",
    "hub_dataset_id", "embedding_cache_dir", "fp16", "bf16", "gradient_checkpointing", "dataloader_num_workers",
})


def this_start(config: TrainingConfig) -> dict:
    """This start's time, flags and the content hashes of its data files."""
    arguments = config.as_arguments()
    hashes = {flag: file_sha256(arguments[flag]) for flag in DATA_FILE_FLAGS
              if arguments.get(flag) and Path(arguments[flag]).is_file()}
    return {"started_at": datetime.now().isoformat(timespec="seconds"), "arguments": arguments,
            "file_sha256": hashes}


def read_starts(run_dir: Path) -> list[dict]:
    """Every start recorded in a run folder, first start first; empty for runs written before the record."""
    path = Path(run_dir) / STARTS_FILE
    try:
        starts = json.loads(path.read_text(encoding="utf-8")).get("starts") if path.is_file() else []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        logger.warning("ignoring %s: it does not parse (the flags of earlier starts are not checked)", path)
        return []
    return starts if isinstance(starts, list) else []


def record_start(run_dir: Path, config: TrainingConfig, resuming: bool) -> None:
    """Records this start; a resume is first checked against the run's first start (refused on a difference)."""
    starts = read_starts(run_dir)
    start = this_start(config)
    if resuming and starts:
        differences = training_differences(starts[0], start)
        if differences:
            raise CheckpointError(f"{run_dir} cannot be resumed with other training settings: "
                                  f"{'; '.join(differences)}. Resume with the same flags, or start a new run")
    elif resuming:
        logger.warning("%s has no %s (a run started before it was kept): its first start's flags cannot be "
                       "checked; this start's are recorded from now on", run_dir, STARTS_FILE)
    write_json_atomic(Path(run_dir) / STARTS_FILE, {"starts": starts + [start]})


def training_differences(first: dict, start: dict) -> list[str]:
    """Each setting that changes what is trained and differs from the first start, as '--flag X here, Y then'."""
    before, now = first.get("arguments") or {}, start["arguments"]
    differences = []
    for flag in sorted(set(before) | set(now)):
        if flag in MAY_DIFFER or flag not in before:  # A flag newer than the run: nothing to compare with.
            continue
        if flag in DATA_FILE_FLAGS and before[flag] and now.get(flag):
            old_hash, new_hash = (first.get("file_sha256") or {}).get(flag), start["file_sha256"].get(flag)
            if old_hash and old_hash != new_hash:
                differences.append(f"--{flag} {now[flag]} holds other data than {before[flag]} held when the "
                                   "run started (its content differs)")
        elif before[flag] != now.get(flag):
            differences.append(f"--{flag} {_shown(now.get(flag))} here, {_shown(before[flag])} when the run started")
    return differences


def _shown(value) -> str:
    return "(not given)" if value is None else str(value)
