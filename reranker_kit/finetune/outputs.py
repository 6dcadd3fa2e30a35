"""What every finished run records the same way, reranker or embedder: its starts, the library versions, its
wall time and peak memory; and what a finished run keeps of its checkpoints.

"""

import logging
import platform
import shutil
import time
from pathlib import Path

from reranker_kit.finetune.settings import JobSettings
from reranker_kit.finetune.starts import read_starts
from reranker_kit.run_folder import checkpoint_folders

logger = logging.getLogger(__name__)


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "sentence-transformers", "FlagEmbedding", "scikit-learn", "numpy",
                    "pandas"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def run_info(run_dir: Path, settings: JobSettings, kind: str, started: float, specific: dict) -> dict:
    """training_info.json's record: what every run records, then the job's `specific` fields.

    "arguments" is the first start's flat {setting: value} mapping; every start is listed under "starts".
    The job writes it last, with `run_folder.write_completion_marker`: the run is finished from then on.
    """
    starts = [{"started_at": start.get("started_at"), "arguments": start.get("arguments")}
              for start in read_starts(run_dir)] or [{"started_at": None, "arguments": settings.as_arguments()}]
    info = {"kind": kind, "arguments": starts[0]["arguments"], "starts": starts,
            # Absolute, so main.py can find the labelled queries again from any folder (in-sample marks).
            "train_xlsx": str(Path(settings.data.train_xlsx).resolve()), "library_versions": library_versions(),
            # Every session's time up to the checkpoint resumed from, then this session's.
            "wall_time_s": time.time() - started, **specific}
    return info


def remove_intermediate_checkpoints(run_dir: Path, keep: bool) -> None:
    """A finished run keeps the model it saved; its checkpoints (weights and optimizer state) go unless `keep`.

    They exist to resume an interrupted run; once the run has finished they only fill the disk (several GB
    for a 568M-parameter reranker). A run that stops early never gets here, so it keeps them.
    """
    found = checkpoint_folders(run_dir)
    if keep or not found:
        return
    freed = sum(path.stat().st_size for folder in found for path in folder.rglob("*") if path.is_file())
    for folder in found:
        shutil.rmtree(folder)
    logger.info("removed %d intermediate checkpoint(s) of the finished run (%.0f MB; `keep_checkpoints` keeps them)",
                len(found), freed / 2**20)
