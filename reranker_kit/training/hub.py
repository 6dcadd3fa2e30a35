"""Pushing a finished run to the Hugging Face Hub (`fine_tune_reranker.py --push_to_hub`).

The Trainer creates the repository and pushes checkpoints while it trains; the finished run is pushed
here, after `training.outputs.write_finished_run` has written the model card, so the card on the Hub is the
one in the run folder.
"""

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from reranker_kit.basics.errors import KitError

logger = logging.getLogger(__name__)

# Kept off the Hub: checkpoints and tracker logs (large, and the Trainer pushes checkpoints itself), and
# the files that record this machine's absolute paths (training_info.json, trainer_state.json,
# training_args.bin). The model, tokenizer, card, metrics, fusion choice and curves go up.
HUB_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "runs/**", "*.tmp", "training_info.json",
                       "trainer_state.json", "training_args.bin"]


def require_hub_access(repo_id: str | None = None) -> None:
    """Fails before training when a push could not happen: offline mode, no token, or no network to the Hub."""
    from huggingface_hub import get_token

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise KitError("`push_to_hub` needs the Hugging Face Hub, but HF_HUB_OFFLINE=1 is set: unset it, or drop "
                       "`push_to_hub` and upload the run folder later")
    if get_token() is None:
        raise KitError("`push_to_hub` needs a Hugging Face token: run `huggingface-cli login` (or set HF_TOKEN to a "
                       "token with write access), or drop `push_to_hub`")
    problem = _connection_problem()
    if problem:
        target = repo_id or "a repository of your account"
        raise KitError(f"`push_to_hub` needs the Hugging Face Hub to push {target}, but {problem}; nothing was "
                       "trained. Connect this machine (or fix HF_ENDPOINT), or drop `push_to_hub` and upload the run "
                       f"folder later with `huggingface-cli upload {repo_id or 'USER/REPO'} RUN_FOLDER`")


def _connection_problem(timeout_s: float = 5.0) -> str | None:
    """Why the Hub endpoint takes no connection, or None: a TCP connection, so no minute of HTTP retries."""
    from huggingface_hub import constants

    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return None  # The proxy, not this machine, reaches the Hub.
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout_s).close()
    except OSError as problem:
        return f"{constants.ENDPOINT} cannot be reached from this machine ({problem.strerror or problem})"
    return None


def files_to_push(run_dir: Path) -> list[str]:
    """The run's files, relative to it, that `push_run` uploads."""
    from huggingface_hub.utils import filter_repo_objects

    paths = sorted(path.relative_to(run_dir).as_posix() for path in run_dir.rglob("*") if path.is_file())
    return list(filter_repo_objects(paths, ignore_patterns=HUB_IGNORE_PATTERNS))


def push_run(run_dir: Path, repo_id: str | None, private: bool) -> str:
    """Uploads the finished run folder (see HUB_IGNORE_PATTERNS) and returns the repository id."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        repo_id = repo_id or f"{api.whoami()['name']}/{run_dir.name}"
        api.create_repo(repo_id, private=private or None, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=run_dir, ignore_patterns=HUB_IGNORE_PATTERNS,
                          commit_message=f"Finished run {run_dir.name}: model, model card and dev metrics")
    except OSError as problem:  # requests' and huggingface_hub's errors: no network, refused token, quota.
        reason = " ".join(str(problem).split())[:300]
        target = repo_id or f"<your account>/{run_dir.name}"
        raise KitError(f"could not push {run_dir} to the Hub as {target} ({type(problem).__name__}: {reason}); "
                       f"the finished run is kept in {run_dir}: upload it later with `huggingface-cli upload "
                       f"{target} {run_dir}`") from None
    logger.info("pushed %s to https://huggingface.co/%s", run_dir, repo_id)
    return repo_id
