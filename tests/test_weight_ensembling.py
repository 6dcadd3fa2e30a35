"""WiSE-FT weight interpolation of a base reranker and its fine-tuned copy (reranker_kit/models/weight_ensembling.py)."""

import math

import numpy as np
import pytest
import torch

from reranker_kit.basics.model_files import BUNDLED_MODEL_ALIAS
from reranker_kit.models.loading import load_cross_encoder
from reranker_kit.models.pair_encoding import score_pairs
from reranker_kit.models.weight_ensembling import (
    ALPHAS,
    describe_alpha,
    has_trained_head,
    interpolate_state_dicts,
    interpolated_model,
)
from reranker_kit.testing import XLMR_TINY_SHAPE, xlmr_classifier

PAIRS = [("CLB tuyển thành viên khi nào ạ?", "Câu lạc bộ tuyển thành viên vào tháng 9 hằng năm."),
         ("Em ko học CNTT thì có tham gia được CLB ko ạ ?", "Sinh viên mọi ngành đều có thể tham gia."),
         ("CLB có mấy ban?", "CLB có bốn ban: học thuật, truyền thông, sự kiện và hậu cần.")]


@pytest.fixture(scope="module")
def base_and_tuned(tiny_xlmr_model):
    """The tiny XLM-R as the base, and a copy whose every weight moved (as fine-tuning would move them)."""
    base, tokenizer, _ = load_cross_encoder(str(tiny_xlmr_model))
    tuned, _, _ = load_cross_encoder(str(tiny_xlmr_model))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in tuned.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return base, tuned, tokenizer


def _scores(model, tokenizer) -> np.ndarray:
    return score_pairs(model, tokenizer, PAIRS, max_length=64, batch_size=2)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {key: tensor.clone() for key, tensor in model.state_dict().items()}


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75])
def test_the_blend_scores_as_a_hand_interpolation_of_the_two_weight_sets(base_and_tuned, tiny_xlmr_model, alpha):
    base, tuned, tokenizer = base_and_tuned
    base_state, tuned_state = base.state_dict(), tuned.state_dict()
    by_hand = {key: (1 - alpha) * base_state[key] + alpha * tuned_state[key] if tuned_state[key].is_floating_point()
               else tuned_state[key] for key in tuned_state}
    reference, _, _ = load_cross_encoder(str(tiny_xlmr_model))
    reference.load_state_dict(by_hand)
    blended = interpolated_model(base, tuned, alpha)
    np.testing.assert_allclose(_scores(blended, tokenizer), _scores(reference, tokenizer), atol=1e-6)
    assert not np.allclose(_scores(blended, tokenizer), _scores(tuned, tokenizer), atol=1e-4)
    from_dicts = interpolate_state_dicts(base_state, tuned_state, alpha)
    assert all(torch.allclose(from_dicts[key].float(), by_hand[key].float(), atol=1e-7) for key in by_hand)


def test_alpha_0_and_1_give_the_base_and_the_tuned_weights_bit_for_bit(base_and_tuned):
    base, tuned, tokenizer = base_and_tuned
    for alpha, expected in ((0.0, base), (1, tuned)):
        blended = interpolated_model(base, tuned, alpha)
        assert all(torch.equal(tensor, expected.state_dict()[key]) for key, tensor in blended.state_dict().items())
        # Equal weights in another memory block can still round a matrix product differently (1e-9 here),
        # so the scores are compared to float32 precision, the weights bit for bit.
        np.testing.assert_allclose(_scores(blended, tokenizer), _scores(expected, tokenizer), rtol=0, atol=1e-6)
    assert not np.allclose(_scores(base, tokenizer), _scores(tuned, tokenizer))


def test_neither_input_model_is_changed(base_and_tuned):
    base, tuned, _ = base_and_tuned
    before_base, before_tuned = _snapshot(base), _snapshot(tuned)
    blended = interpolated_model(base, tuned, 0.5)
    interpolate_state_dicts(base.state_dict(), tuned.state_dict(), 0.5)
    assert all(torch.equal(before_base[key], value) for key, value in base.state_dict().items())
    assert all(torch.equal(before_tuned[key], value) for key, value in tuned.state_dict().items())
    assert blended is not tuned and blended.config.num_labels == 1


def test_integer_buffers_come_from_the_tuned_weights_unchanged():
    base = {"weight": torch.zeros(2), "position_ids": torch.arange(4), "flag": torch.tensor([True])}
    tuned = {"weight": torch.ones(2), "position_ids": torch.arange(4) + 1, "flag": torch.tensor([False])}
    blended = interpolate_state_dicts(base, tuned, 0.25)
    assert torch.equal(blended["weight"], torch.full((2,), 0.25))
    assert torch.equal(blended["position_ids"], tuned["position_ids"]) and blended["position_ids"].dtype == torch.int64
    assert torch.equal(blended["flag"], tuned["flag"])


def test_half_precision_weights_stay_half_precision():
    blended = interpolate_state_dicts({"w": torch.zeros(3, dtype=torch.float16)},
                                      {"w": torch.ones(3, dtype=torch.float16)}, 0.5)
    assert blended["w"].dtype == torch.float16 and torch.equal(blended["w"], torch.full((3,), 0.5, dtype=torch.float16))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan])
def test_an_alpha_outside_0_to_1_is_refused(base_and_tuned, alpha):
    base, tuned, _ = base_and_tuned
    with pytest.raises(ValueError, match="alpha must be between 0"):
        interpolated_model(base, tuned, alpha)


@pytest.mark.parametrize("alpha", [True, "0.5", None])
def test_an_alpha_that_is_not_a_number_is_refused(alpha):
    with pytest.raises(TypeError, match="alpha must be a number"):
        interpolate_state_dicts({}, {}, alpha)


def test_different_keys_or_shapes_are_refused_with_the_key_named(base_and_tuned):
    base, tuned, _ = base_and_tuned
    state = dict(tuned.state_dict())
    state.pop("classifier.out_proj.bias")
    with pytest.raises(ValueError, match="classifier.out_proj.bias"):
        interpolate_state_dicts(base.state_dict(), state, 0.5)
    wider = xlmr_classifier({**XLMR_TINY_SHAPE, "vocab_size": base.config.vocab_size, "intermediate_size": 96})
    with pytest.raises(ValueError, match=r"'roberta\.encoder\.layer\.0\.intermediate\.dense\.weight' has shape"):
        interpolated_model(base, wider, 0.5)


def test_a_trained_head_is_told_from_a_fresh_one(tiny_xlmr_model, tmp_path):
    assert has_trained_head(str(tiny_xlmr_model))  # a one-label classifier saved whole, as a finished run
    assert not has_trained_head(BUNDLED_MODEL_ALIAS)  # a plain BertModel: the head would be new
    # A config that claims a one-label classifier over weights without the head: transformers' loading
    # info (missing classifier keys) decides, not the config.
    model, _, _ = load_cross_encoder(str(tiny_xlmr_model))
    headless = {key: value for key, value in model.state_dict().items() if not key.startswith("classifier.")}
    model.save_pretrained(tmp_path / "headless", state_dict=headless)
    assert not has_trained_head(str(tmp_path / "headless"))
    two_labels = xlmr_classifier({**XLMR_TINY_SHAPE, "vocab_size": 50})
    two_labels.config.num_labels = 2
    two_labels.save_pretrained(tmp_path / "two_labels")
    assert not has_trained_head(str(tmp_path / "two_labels"))


def test_the_default_grid_and_labels():
    assert ALPHAS == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert [describe_alpha(alpha) for alpha in (0, 0.25, 1)] == ["base", "WiSE-FT alpha 0.25", "fine-tuned"]
