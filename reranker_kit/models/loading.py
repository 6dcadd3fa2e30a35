"""Loading a one-logit cross-encoder (model and tokenizer) from a name that `basics.model_files` resolves, and
telling what kind of model a folder holds before it loads: no tokenizer, an embedding model, no ranking head.
"""

from contextlib import contextmanager
from pathlib import Path

from reranker_kit.basics.errors import ModelLoadError
from reranker_kit.basics.files import DamagedFile, read_json_object
from reranker_kit.basics.model_files import OFFLINE_MODEL_ALIAS, load_cache_first, resolve_model_name

# The fresh head of a base without a trained one is drawn from this seed when scoring (`Reranker`), so a
# given base scores the same in every process. 42 is fine_tune_reranker.py's default --seed, which seeds the
# head of the base a run starts from: the same head the run's dev evaluation compared against.
UNTRAINED_HEAD_SEED = 42
CLASSIFIER_SUFFIX = "ForSequenceClassification"
# The files a Hugging Face tokenizer is read from: a fast tokenizer's own file, or a slow tokenizer's
# vocabulary (BERT's vocab.txt, XLM-RoBERTa's sentencepiece.bpe.model, RoBERTa's vocab.json + merges.txt...).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model", "spm.model",
                   "tokenizer.model", "vocab.json")
# run_folder.COMPLETION_MARKER and the "kind" fine_tune_embedder.py records in it; run_folder sits above this
# floor, so the two names are repeated here rather than imported.
RUN_RECORD = "training_info.json"
EMBEDDER_KIND = "embedder"


def load_cross_encoder(name: str, *, dtype=None, head_seed: int | None = None):
    """Loads (model, tokenizer, resolved name) for a one-logit cross-encoder.

    A base model without a classification head (the bundled MiniLM, any plain encoder) gets a freshly
    initialised one-logit head: it must be fine-tuned before its scores mean anything. `head_seed` draws that
    head from a fixed seed (torch's global random state is left as it was); None draws it from the global
    state, which training seeds with --seed.
    """
    model, tokenizer, resolved, _ = load_cross_encoder_with_info(name, dtype=dtype, head_seed=head_seed)
    return model, tokenizer, resolved


def load_cross_encoder_with_info(name: str, *, dtype=None, head_seed: int | None = None):
    """`load_cross_encoder` and transformers' loading info (the weights it had to initialise), from one load."""
    from transformers import AutoModelForSequenceClassification

    resolved = resolve_model_name(name)
    tokenizer = load_tokenizer(resolved, name)
    try:
        with _seeded(head_seed):
            model, info = load_pretrained(AutoModelForSequenceClassification, resolved, num_labels=1,
                                          torch_dtype=dtype, output_loading_info=True)
    except (OSError, ValueError) as problem:
        raise ModelLoadError(f"cannot load model {name!r} ({problem}).") from None
    return model, tokenizer, resolved, info


def load_tokenizer(resolved: str, name: str | None = None):
    """The tokenizer of a resolved model; a folder without tokenizer files is refused with the files named."""
    from transformers import AutoTokenizer

    problem = missing_tokenizer_problem(resolved)
    if problem:
        raise ModelLoadError(problem)
    try:
        return load_pretrained(AutoTokenizer, resolved)
    except (OSError, ValueError) as problem:
        raise ModelLoadError(f"cannot load the tokenizer of model {name or resolved!r} ({problem}).") from None


def missing_tokenizer_problem(resolved: str) -> str | None:
    """Why a model folder cannot give a tokenizer (transformers fails on it with a TypeError about a None path)."""
    folder = Path(resolved)
    if not folder.is_dir() or any((folder / file_name).is_file() for file_name in TOKENIZER_FILES):
        return None
    present = sorted(path.name for path in folder.iterdir())
    return (f"{folder} holds no tokenizer files (none of {', '.join(TOKENIZER_FILES)}; it holds "
            f"{', '.join(present)}). Copy the tokenizer files of the model it was trained from into it "
            "(every run folder fine_tune_reranker.py writes has them), or give the folder they were saved in.")


def embedding_model_problem(resolved: str) -> str | None:
    """Why a folder is no reranker: fine_tune_embedder.py wrote it (a run or one of its checkpoints).

    Loaded as a cross-encoder it would score with a random head. The bundled MiniLM and other plain
    encoders are not refused here: they are the bases a reranker is fine-tuned from (see `config_has_head`).
    """
    folder = Path(resolved)
    if not folder.is_dir():
        return None
    run = next((candidate for candidate in (folder, folder.parent) if _run_kind(candidate) == EMBEDDER_KIND), None)
    if run is None:
        return None
    return (f"{folder} is an embedding model (a sentence-transformers bi-encoder written by fine_tune_embedder.py), "
            "not a reranker: as a reranker it would score with a random head. Use it as the first stage's encoder "
            f"(main.py --embedding_model {run} --retriever hybrid), and give a reranker run "
            "(outputs/reranker-finetuned-*) where a reranker is expected.")


def _run_kind(folder: Path) -> str | None:
    try:
        return (read_json_object(folder / RUN_RECORD) or {}).get("kind")
    except DamagedFile:
        return None


def config_has_head(resolved: str) -> bool:
    """Whether a model's config.json names a one-label sequence classifier, read without loading the model.

    False means the head would be new for certain (the bundled MiniLM is a plain BertModel); True still needs
    the weights to hold it (`weight_ensembling.head_was_trained`). A Hub id without a local config counts as True.
    """
    config_path = Path(resolved) / "config.json"
    if not config_path.is_file():
        return True
    try:
        config = read_json_object(config_path, missing={})
    except DamagedFile as problem:
        raise ModelLoadError(f"{problem}: it is not a readable model config") from None
    labels = len(config["id2label"]) if "id2label" in config else config.get("num_labels", 2)
    return labels == 1 and any(name.endswith(CLASSIFIER_SUFFIX) for name in config.get("architectures") or [])


@contextmanager
def _seeded(seed: int | None):
    """Draws what is initialised inside from `seed` on the CPU (where from_pretrained builds the model), and
    puts torch's CPU random state back afterwards, so a caller's own seeding is not disturbed."""
    if seed is None:
        yield
        return
    import torch

    state = torch.random.get_rng_state()
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def load_pretrained(auto_class, resolved: str, **kwargs):
    """`auto_class.from_pretrained(resolved)`, from the cache first; an unreachable Hub says how to get the model."""
    return load_cache_first(auto_class.from_pretrained, resolved, (
        f"model {resolved!r} is not in the local Hugging Face cache and the Hub cannot be reached from "
        f"this machine. Either run with `base_model` {OFFLINE_MODEL_ALIAS} (the bundled offline model), "
        f"or on a machine with internet run `huggingface-cli download {resolved} --local-dir "
        f"models/{resolved.split('/')[-1]}`, copy that folder here and pass its path."), **kwargs)
