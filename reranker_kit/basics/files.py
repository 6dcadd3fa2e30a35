"""Writing files so that a reader never sees half of one, and checking a destination before any work.

Every file a run or a report writes goes through `write_file_atomic`: a temporary file beside the target,
fsynced, given the permissions of an ordinary file, then renamed over it.
"""

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from reranker_kit.basics.errors import KitError


def check_writable_folder(folder: str | Path, flag: str) -> None:
    """Fails with the flag named unless `folder` is, or can be created as, a folder this process writes in.

    Nothing is created: the scripts check every destination before any work whose result would be lost.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"lies under {existing}, which is a file"
        raise KitError(f"{flag} {folder} {where}, not a folder; give a folder path, or move that file away")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise KitError(f"{flag} {folder}: cannot write in {existing} (permission denied); give a folder you can "
                       "write to")


def write_file_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Has `write` fill a temporary file beside `path`, then renames it: readers never see half a file.

    The temporary name keeps the suffix, so writers that choose a format by extension (charts) work.
    """
    path = Path(path)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(descriptor)
    temporary = Path(name)
    try:
        write(temporary)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes files private; a report is an ordinary file.
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def share_like_other_files(folder: str | Path) -> None:
    """Gives the files directly in `folder` the mode every other file of a run gets: 0666 less the umask.

    safetensors (0.6 and later) saves through a private temporary file, so the weights it writes are
    0600 while the config and tokenizer beside them are 0644: others on a shared machine could not load
    the run.
    """
    mode = 0o666 & ~_umask()
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)


def _umask() -> int:
    try:  # Linux shows it without changing it; setting it to read it back races with other threads.
        status = Path("/proc/self/status").read_text(encoding="ascii")
        return int(re.search(r"^Umask:\s*([0-7]+)", status, re.MULTILINE).group(1), 8)
    except (OSError, AttributeError):
        return 0o022


class DamagedFile(ValueError):
    """A JSON file that exists but does not parse, or holds another kind of value than expected."""


def read_json_object(path: str | Path, missing=None):
    """A JSON object (dict) from `path`; `missing` when there is no such file.

    The one reader of the kit's own JSON files (run folders, checkpoints, caches). A file that does not
    parse or holds no object raises `DamagedFile` naming it: each caller decides what a damaged file means
    (skip a run, start a count from zero, train a fold again) and says so.
    """
    path = Path(path)
    if not path.is_file():
        return missing
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise DamagedFile(f"{path} does not parse ({problem})") from None
    if not isinstance(value, dict):
        raise DamagedFile(f"{path} holds no JSON object")
    return value


def write_json_atomic(path: str | Path, payload: dict) -> None:
    """Writes JSON through a temporary file and a rename, so readers never see half a file."""
    text = json.dumps(payload, ensure_ascii=False, indent=2, default=str)
    write_file_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes: a file's identity that survives a move or a rename."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_disk_full(error: BaseException, folder: str | Path, needed_bytes: int) -> bool:
    """Whether a failed write ran out of disk: ENOSPC anywhere in the error's chain, or too little space left.

    torch.save's zip writer reports a full disk only as "unexpected pos ... vs ..." or "file write failed",
    with no errno: the free space is what tells (measured after the partial file was removed).
    """
    seen = error
    while seen is not None:
        if getattr(seen, "errno", None) == errno.ENOSPC or "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return free_bytes(folder) < needed_bytes


def free_bytes(folder: str | Path) -> int:
    """The space left on the disk that holds `folder` (or its nearest existing parent)."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def folder_bytes(folder: str | Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
