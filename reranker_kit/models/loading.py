"""Loading a one-logit cross-encoder (model and tokenizer) from a name that `basics.model_files` resolves."""

from reranker_kit.basics.errors import ModelLoadError
from reranker_kit.basics.model_files import OFFLINE_MODEL_ALIAS, load_cache_first, resolve_model_name


def load_cross_encoder(name: str, *, dtype=None):
    """Loads (model, tokenizer, resolved name) for a one-logit cross-encoder.

    A base model without a classification head (the bundled MiniLM, any plain encoder) gets a freshly
    initialised one-logit head: it must be fine-tuned before its scores mean anything.
    """
    model, tokenizer, resolved, _ = load_cross_encoder_with_info(name, dtype=dtype)
    return model, tokenizer, resolved


def load_cross_encoder_with_info(name: str, *, dtype=None):
    """`load_cross_encoder` and transformers' loading info (the weights it had to initialise), from one load."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    resolved = resolve_model_name(name)
    try:
        tokenizer = load_pretrained(AutoTokenizer, resolved)
        model, info = load_pretrained(AutoModelForSequenceClassification, resolved, num_labels=1, torch_dtype=dtype,
                                      output_loading_info=True)
    except (OSError, ValueError) as problem:
        raise ModelLoadError(f"cannot load model {name!r} ({problem}).") from None
    return model, tokenizer, resolved, info


def load_pretrained(auto_class, resolved: str, **kwargs):
    """`auto_class.from_pretrained(resolved)`, from the cache first; an unreachable Hub says how to get the model."""
    return load_cache_first(auto_class.from_pretrained, resolved, (
        f"model {resolved!r} is not in the local Hugging Face cache and the Hub cannot be reached from "
        f"this machine. Either run with --base_model {OFFLINE_MODEL_ALIAS} (the bundled offline model), "
        f"or on a machine with internet run `huggingface-cli download {resolved} --local-dir "
        f"models/{resolved.split('/')[-1]}`, copy that folder here and pass its path."), **kwargs)
