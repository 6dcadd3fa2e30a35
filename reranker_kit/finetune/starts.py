"""What each start of a run was asked to train, kept in the run folder's run_started.json.

A resume must train the same run: a run resumed with another learning rate, seed or query file would
report "before/after" numbers that belong to no single recipe. The first start records its flags and
the content hashes of its data files; a resume is compared with that record and refused with the
differences named. Settings that do not change what is trained (evaluation batch size, logging, tracking,
where outputs go, the hardware's precision) may differ: each setting's field says which
(`finetune.settings`, `resume=`). Every start is kept, in order.
"""

import logging
from datetime import datetime
from pathlib import Path

from reranker_kit.basics.errors import CheckpointError
from reranker_kit.basics.files import DamagedFile, file_sha256, read_json_object, write_json_atomic
from reranker_kit.basics.model_files import same_model
from reranker_kit.finetune.settings import DATA_FILE, MAY_DIFFER, JobSettings, flat_arguments

logger = logging.getLogger(__name__)

STARTS_FILE = "run_started.json"


def this_start(settings: JobSettings) -> dict:
    """This start's time, settings and the content hashes of its data files (compared by content, not path)."""
    arguments = settings.as_arguments()
    hashes = {name: file_sha256(arguments[name]) for name, item in settings.setting_fields().items()
              if item.metadata["resume"] == DATA_FILE and arguments.get(name) and Path(arguments[name]).is_file()}
    return {"started_at": datetime.now().isoformat(timespec="seconds"), "arguments": arguments,
            "file_sha256": hashes}


def read_starts(run_dir: Path) -> list[dict]:
    """Every start recorded in a run folder, first start first; empty for runs written before the record."""
    try:
        starts = read_json_object(Path(run_dir) / STARTS_FILE, missing={}).get("starts", [])
    except DamagedFile as problem:
        logger.warning("ignoring %s (the settings of earlier starts are not checked)", problem)
        return []
    return starts if isinstance(starts, list) else []


def record_start(run_dir: Path, settings: JobSettings, resuming: bool) -> None:
    """Records this start; a resume is first checked against the run's first start (refused on a difference)."""
    starts = read_starts(run_dir)
    start = this_start(settings)
    if resuming and starts:
        differences = training_differences(starts[0], start, settings)
        if differences:
            raise CheckpointError(f"{run_dir} cannot be resumed with other training settings: "
                                  f"{'; '.join(differences)}. Resume with the same settings, or start a new run")
    elif resuming:
        logger.warning("%s has no %s (a run started before it was kept): its first start's settings cannot be "
                       "checked; this start's are recorded from now on", run_dir, STARTS_FILE)
    write_json_atomic(Path(run_dir) / STARTS_FILE, {"starts": starts + [start]})


def training_differences(first: dict, start: dict, settings: JobSettings) -> list[str]:
    """Each setting that changes what is trained and differs from the first start, as '`name` X here, Y then'."""
    before, now = first.get("arguments") or {}, start["arguments"]
    before = flat_arguments(before)  # Older embedder runs nested them by group.
    kinds = {name: item.metadata["resume"] for name, item in settings.setting_fields().items()}
    differences = []
    for name in sorted(set(before) | set(now)):
        if kinds.get(name) == MAY_DIFFER or name not in before:  # A setting newer than the run: nothing to compare.
            continue
        if name == "base_model" and now.get(name) and same_model(before[name], now[name]):
            continue  # The same model by another name: `finetune.progress.check_base_model` said so.
        if kinds.get(name) == DATA_FILE and before[name] and now.get(name):
            old_hash, new_hash = (first.get("file_sha256") or {}).get(name), start["file_sha256"].get(name)
            if old_hash and old_hash != new_hash:
                differences.append(f"`{name}` {now[name]} holds other data than {before[name]} held when the "
                                   "run started (its content differs)")
        elif before[name] != now.get(name):
            differences.append(f"`{name}` {_shown(now.get(name))} here, {_shown(before[name])} when the run started")
    return differences


def _shown(value) -> str:
    return "(not given)" if value is None else str(value)
