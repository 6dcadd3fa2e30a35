"""Fusion of first-stage and reranker scores, and the rule that chooses it (hand-computed cases)."""

import numpy as np
import pytest

from reranker_kit.basics.scores import normalise
from reranker_kit.fusion import FUSION_METHODS, choose_fusion, fuse, setting_key


def test_normalisations_by_hand():
    values = np.array([3.0, 1.0, 2.0])
    np.testing.assert_allclose(normalise(values, "minmax"), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(normalise(values, "zscore"), [1.224745, -1.224745, 0.0], rtol=1e-5)
    np.testing.assert_allclose(normalise(values, "rrf"), [1 / 61, 1 / 63, 1 / 62])
    for method in FUSION_METHODS:
        assert normalise(np.array([]), method).size == 0
    assert (normalise(np.array([2.0, 2.0]), "zscore") == 0).all()


def test_zscore_keeps_a_confident_first_stage_on_top_where_minmax_does_not():
    # The first stage is sure of document 0 (far ahead of a flat rest); the reranker's scores spread
    # evenly and put document 1 first. Min-max gives both ranges 1; z-scores weigh the lone outlier more.
    first_stage = np.array([10.0] + [1.0] * 19)
    spread = list(np.linspace(1.0, 0.0, 20))
    reranker = np.array([spread.pop(10), spread.pop(0), *spread])  # document 0 mid-field, document 1 first
    assert np.argmax(fuse(first_stage, reranker, 0.7, "minmax")) == 1
    assert np.argmax(fuse(first_stage, reranker, 0.7, "zscore")) == 0


def per_query(values_by_setting: dict[str, list[float]]) -> dict:
    """{setting: {qid: {hit@k, mrr@k, metric}}} where every metric of a query takes the given value."""
    names = [f"{name}@{k}" for name in ("hit", "mrr") for k in (3, 5, 7)]
    return {key: {f"q{i}": dict.fromkeys(names, value) for i, value in enumerate(values)}
            for key, values in values_by_setting.items()}


@pytest.mark.parametrize("queries, expected", [(20, 0.1), (180, 0.2)])
def test_a_clear_gain_is_shrunk_by_the_amount_of_evidence(queries, expected):
    # Every query gains the same, so no standard error; then w * n / (n + 20): 0.2 * 20 / 40 = 0.1,
    # 0.2 * 180 / 200 = 0.18, whose nearest grid weight is 0.2.
    table = {setting_key("minmax", w): [w] * queries for w in (0.0, 0.1, 0.2)}
    choice = choose_fusion(per_query(table), "mrr@5")
    assert choice.best_setting == "minmax:0.2" and (choice.method, choice.weight) == ("minmax", expected)
    assert choice.queries == queries and choose_fusion(per_query(table), "mrr@5", shrink=False).weight == 0.2


def test_a_gain_within_one_standard_error_shrinks_toward_the_first_stage():
    # Weight 0.2 wins on average through three queries only: 0.1 is within one standard error of it
    # (0.025 <= 0.041), and 0.1 * 20 / 40 = 0.05 then rounds down to the first stage alone.
    table = {setting_key("minmax", 0.0): [0.5] * 20, setting_key("minmax", 0.1): [0.55] * 20,
             setting_key("minmax", 0.2): [0.5] * 17 + [1.0] * 3}
    choice = choose_fusion(per_query(table), "mrr@5")
    assert choice.best_setting == "minmax:0.2" and (choice.method, choice.weight) == ("minmax", 0.0)
    assert choose_fusion(per_query(table), "mrr@5", shrink=False).weight == 0.2


def test_a_setting_that_loses_a_guarded_metric_is_never_chosen():
    table = per_query({setting_key("minmax", 0.0): [0.5] * 4, setting_key("minmax", 0.5): [0.5] * 4})
    for row in table["minmax:0.5"].values():
        row["mrr@5"] = 0.9
    table["minmax:0.5"]["q0"]["hit@3"] = 0.0  # better mrr@5, but one query loses its hit@3
    assert choose_fusion(table, "mrr@5").weight == 0.0


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_weight_zero_is_the_first_stage_and_weight_one_the_reranker(method):
    first_stage, reranker = np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0])
    assert list(np.argsort(-fuse(first_stage, reranker, 0.0, method))) == [0, 1, 2]
    assert list(np.argsort(-fuse(first_stage, reranker, 1.0, method))) == [2, 1, 0]
