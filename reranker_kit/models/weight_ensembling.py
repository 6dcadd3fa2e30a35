"""Weight-space ensembles of a base reranker and its fine-tuned copy (WiSE-FT, Wortsman et al., 2022).

`(1 - alpha) * base + alpha * tuned`, tensor by tensor: alpha 0 is the base model, alpha 1 the fine-tuned
one, and the values between often keep most of the fine-tuning gain while losing less of what the base
knew. On a few dozen labelled queries that is the safe way to hand back "a little fine-tuning" instead of
all or nothing. It only means something when the base already ranks: a base whose classification head is
freshly initialised (the bundled MiniLM, any plain encoder) scores at random, so blending toward it blends
toward noise. `has_trained_head` tells the two apart.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping

import torch

from reranker_kit.basics.errors import ModelLoadError
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.models.loading import config_has_head, load_pretrained

# The default grid of alphas to score on held-out queries (0 = the base model, 1 = the fine-tuned one).
ALPHAS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def check_alpha(alpha) -> float:
    """alpha as a float in [0, 1]; TypeError for a non-number, ValueError outside the range."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a number between 0 and 1, got {type(alpha).__name__} {alpha!r}")
    if not 0.0 <= float(alpha) <= 1.0:  # NaN fails this too
        raise ValueError(f"alpha must be between 0 (the base model) and 1 (the fine-tuned model), got {alpha!r}")
    return float(alpha)


def _check_matching(base_state: Mapping[str, torch.Tensor], tuned_state: Mapping[str, torch.Tensor]) -> None:
    only_base = sorted(set(base_state) - set(tuned_state))
    only_tuned = sorted(set(tuned_state) - set(base_state))
    if only_base or only_tuned:
        raise ValueError(f"the base and fine-tuned weights hold different tensors: only in the base "
                         f"{only_base[:5]}, only in the fine-tuned {only_tuned[:5]}; interpolate two copies of "
                         "the same architecture (a fine-tuned model and the base it started from)")
    for key, tuned in tuned_state.items():
        if base_state[key].shape != tuned.shape:
            raise ValueError(f"tensor {key!r} has shape {tuple(base_state[key].shape)} in the base and "
                             f"{tuple(tuned.shape)} in the fine-tuned weights; they are not the same architecture")


def _interpolated(base: torch.Tensor, tuned: torch.Tensor, alpha: float) -> torch.Tensor:
    """One tensor of the blend, in the fine-tuned tensor's dtype and device; integer and bool buffers
    (position_ids, token_type_ids) are the fine-tuned model's, unchanged."""
    if not tuned.is_floating_point():
        return tuned.clone()
    # lerp is exact at both ends: alpha 0 gives the base tensor, alpha 1 the fine-tuned one, bit for bit.
    # Half-precision weights are blended in fp32 so the blend does not lose their last bits twice.
    start = base.detach().to(device=tuned.device, dtype=torch.float32)
    return torch.lerp(start, tuned.detach().float(), alpha).to(tuned.dtype)


def interpolate_state_dicts(base_state: Mapping[str, torch.Tensor], tuned_state: Mapping[str, torch.Tensor],
                            alpha: float) -> dict[str, torch.Tensor]:
    """`(1 - alpha) * base + alpha * tuned` for every floating tensor; new tensors, the inputs untouched.

    Args:
        base_state: the base model's state dict.
        tuned_state: the fine-tuned model's state dict (same keys and shapes).
        alpha: 0 gives the base weights, 1 the fine-tuned ones.

    Returns:
        A new state dict in the fine-tuned tensors' dtypes and devices.

    Raises:
        TypeError, ValueError: alpha is not a number in [0, 1]; the keys differ or a tensor's shape
            differs (the key named).
    """
    alpha = check_alpha(alpha)
    _check_matching(base_state, tuned_state)
    with torch.no_grad():
        return {key: _interpolated(base_state[key], tuned, alpha) for key, tuned in tuned_state.items()}


def interpolated_model(base_model: torch.nn.Module, tuned_model: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """A new model with the WiSE-FT blend of the two models' weights; neither input is changed.

    The fine-tuned model is copied (its config, head and mode come along) and blended tensor by tensor in
    place, so besides the copy only one tensor at a time is held: three models' worth of memory at peak,
    not four.

    Example:
        >>> blended = interpolated_model(base_model, tuned_model, 0.5)
        >>> blended.save_pretrained("outputs/wise-0.5")
    """
    alpha = check_alpha(alpha)
    base_state = base_model.state_dict()
    _check_matching(base_state, tuned_model.state_dict())
    blended = copy.deepcopy(tuned_model)
    with torch.no_grad():
        for key, tensor in blended.state_dict().items():  # state_dict() holds the copy's own tensors
            tensor.copy_(_interpolated(base_state[key], tensor, alpha))
    return blended


def head_was_trained(loading_info: Mapping[str, list]) -> bool:
    """Whether `from_pretrained(..., output_loading_info=True)` found the whole model in the checkpoint.

    transformers lists the weights it had to initialise as `missing_keys` (for the bundled MiniLM:
    classifier.weight and classifier.bias) and a head of another size as `mismatched_keys`.
    """
    return not loading_info.get("missing_keys") and not loading_info.get("mismatched_keys")


def has_trained_head(model_name: str) -> bool:
    """Whether a base model already ranks: a one-label sequence classifier whose checkpoint holds its head.

    True for a Hub reranker (namdp-ptit/ViRanker, bge-reranker-v2-m3) and a finished run folder; False for
    the bundled MiniLM (a plain BertModel), any plain encoder, and a classifier with another number of
    labels. The config is read first; only a one-label classifier is loaded, to ask transformers which
    weights it had to initialise (`head_was_trained`).
    """
    resolved = resolve_model_name(model_name)
    if not config_has_head(resolved):
        return False
    from transformers import AutoModelForSequenceClassification

    try:
        _, loading_info = load_pretrained(AutoModelForSequenceClassification, resolved, num_labels=1,
                                           output_loading_info=True)
    except (OSError, ValueError) as problem:
        raise ModelLoadError(f"cannot load model {model_name!r} ({problem}).") from None
    return head_was_trained(loading_info)


def describe_alpha(alpha: float) -> str:
    """A label for reports: "base", "fine-tuned" or "WiSE-FT alpha 0.25"."""
    alpha = check_alpha(alpha)
    return "base" if alpha == 0 else "fine-tuned" if alpha == 1 else f"WiSE-FT alpha {alpha:g}"


__all__ = ["ALPHAS", "check_alpha", "describe_alpha", "has_trained_head", "head_was_trained", "interpolate_state_dicts",
           "interpolated_model"]
