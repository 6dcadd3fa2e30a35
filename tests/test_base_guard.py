"""A run never hands back a reranker worse than its base on the dev queries, and says how sure it is.

The base that ranks is the shared `trained_run` (the bundled model fine-tuned on the sample): a finished
run has a trained one-logit head, so it is a real `--base_model` for weight ensembling.
"""

import json

import numpy as np
import pytest
import torch

from reranker_kit.finetune.verdict import GAIN, WITHIN_NOISE
from reranker_kit.models.weight_ensembling import ALPHAS
from reranker_kit.testing import XLMR_TINY_SHAPE, xlmr_classifier
from reranker_kit.training.model_choice import choose_weights

from conftest import QUICK, data_flags, run_script

QUERIES = 20
METRICS = [f"{name}@{k}" for name in ("hit", "mrr", "ndcg") for k in (3, 5, 7)]


def tiny_pair(trained_bias: float):
    """Two tiny XLM-R classifiers that differ only in the head's output bias (0 for the base)."""
    torch.manual_seed(0)
    base = xlmr_classifier({**XLMR_TINY_SHAPE, "vocab_size": 100})
    trained = xlmr_classifier({**XLMR_TINY_SHAPE, "vocab_size": 100})
    trained.load_state_dict(base.state_dict())
    with torch.no_grad():
        trained.classifier.out_proj.bias.fill_(trained_bias)
    return base, trained


def scored_by_bias(gain_per_unit: float):
    """A dev evaluation whose per-query metrics rise with the head's bias (the blend weight a)."""
    wobble = np.where(np.arange(QUERIES) % 2, 0.05, -0.05)

    def per_query(model) -> dict[str, list[float]]:
        bias = float(model.classifier.out_proj.bias.item())
        return {name: list(np.clip(0.3 + gain_per_unit * bias + wobble, 0, 1)) for name in METRICS}

    return per_query


def test_training_that_helps_keeps_trained_weights_and_says_gain():
    base, trained = tiny_pair(trained_bias=1.0)
    chosen, choice = choose_weights(scored_by_bias(0.5), base, trained, "mrr@5", weight_ensembling=True)
    assert choice.alpha > 0 and choice.verdict.verdict == GAIN
    assert chosen.classifier.out_proj.bias.item() == pytest.approx(choice.alpha)
    assert sorted(choice.dev_metrics_by_alpha) == sorted(f"{alpha:g}" for alpha in ALPHAS)
    evidence = choice.verdict.trained_vs_base
    assert evidence["significant"] and evidence["n_queries"] == QUERIES and evidence["ci_low"] > 0


def test_training_that_cannot_help_keeps_the_base_and_says_within_noise():
    base, trained = tiny_pair(trained_bias=1.0)
    chosen, choice = choose_weights(scored_by_bias(0.0), base, trained, "mrr@5", weight_ensembling=True)
    assert choice.alpha == 0.0 and choice.verdict.verdict == WITHIN_NOISE and chosen is base
    assert choice.verdict.saved == "base" and not choice.verdict.trained_vs_base["significant"]


def test_a_base_without_a_trained_head_is_measured_but_never_kept():
    """Keeping it would ship a random head: the trained weights are saved, and the verdict still compares."""
    base, trained = tiny_pair(trained_bias=1.0)
    chosen, choice = choose_weights(scored_by_bias(0.0), base, trained, "mrr@5", weight_ensembling=False,
                                    base_head_trained=False)
    assert choice.alpha == 1.0 and chosen is trained and choice.verdict.saved == "fine-tuned"
    assert choice.verdict.verdict == WITHIN_NOISE and "no trained ranking head" in choice.rule


def test_a_one_query_gain_is_within_the_noise_and_keeps_the_base():
    """One query of 20 better by 1/5 mrr: inside one standard error, so the base stays."""
    base, trained = tiny_pair(trained_bias=1.0)

    def per_query(model):
        values = [0.5] * QUERIES
        if model.classifier.out_proj.bias.item() > 0:
            values[0] = 0.7
        return {name: values for name in METRICS}

    _, choice = choose_weights(per_query, base, trained, "mrr@5", weight_ensembling=False)
    assert choice.alpha == 0.0 and choice.verdict.verdict == WITHIN_NOISE and not choice.weight_ensembling


def test_a_run_that_cannot_beat_its_base_saves_the_base_and_says_so_everywhere(trained_run, small_data, tmp_path):
    """(a) A learning rate too small to move anything: verdict within noise, a = 0, the base's own scores."""
    from rerank import Reranker

    base_run, _ = trained_run
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", str(base_run), "--lr", "1e-12",
                        "--max_steps", "2", *QUICK, "--pseudo_queries_per_document", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "verdict: within noise" in result.stderr and "saved the base weights" in result.stderr
    (run_dir,) = (tmp_path / "outputs").glob("reranker-finetuned-*")
    dev = json.loads((run_dir / "dev_metrics.json").read_text())
    info = json.loads((run_dir / "training_info.json").read_text())
    assert dev["verdict"] == "within noise" and dev["saved_weights"] == "base"
    assert info["weights"]["alpha"] == 0.0 and info["weights"]["weight_ensembling"]
    assert set(info["weights"]["dev_metrics_by_alpha"]) == {f"{alpha:g}" for alpha in ALPHAS}
    assert dev["mrr@5"] >= dev["baseline"]["mrr@5"] - 1e-9  # Never worse than the base on the dev queries.
    assert "Verdict: within noise" in (run_dir / "README.md").read_text()
    pairs = [("phí thành viên bao nhiêu", "Phí thành viên là 100.000 đồng mỗi kỳ."), ("lịch sinh hoạt", "Tối thứ sáu.")]
    np.testing.assert_allclose(Reranker(model_name=str(run_dir)).compute_score(pairs),
                               Reranker(model_name=str(base_run)).compute_score(pairs), atol=1e-5)
    shown = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                       "--reranker", str(run_dir), "--pretrained_reranker", "none", "--top_n", "5", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "verdict within noise: the run kept the base weights" in shown.stderr
    assert "so the fine_tuned row holds the base model's weights" in shown.stderr
    report = json.loads(next((tmp_path / "outputs").glob("eval-*/metrics.json")).read_text())
    assert {row["a"] for row in report["comparisons"]} >= {"fine_tuned"}
    assert all(row["n_queries"] == len(report["runs"][0]["metrics"]) or row["n_queries"] > 0
               for row in report["comparisons"])


def test_a_lora_run_writes_a_merged_folder_every_loader_scores_alike(small_data, tmp_path):
    """(d) --lora_r: the saved run is an ordinary model folder, the same scores in all three loaders."""
    from FlagEmbedding import FlagReranker
    from sentence_transformers import CrossEncoder

    from rerank import Reranker

    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--lora_r", "4", "--lr", "1e-3", "--max_steps", "3", *QUICK, "--pseudo_queries_per_document", "0",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LoRA rank 4:" in result.stderr
    (run_dir,) = (tmp_path / "outputs").glob("reranker-finetuned-*")
    assert not list(run_dir.glob("adapter_*")), "the run folder must hold merged weights, not adapters"
    pairs = [["phí thành viên bao nhiêu", "Phí thành viên là 100.000 đồng mỗi kỳ."], ["lịch sinh hoạt", "Tối thứ sáu."]]
    ours = Reranker(model_name=str(run_dir)).compute_score(pairs)
    flag = FlagReranker(str(run_dir), use_fp16=False).compute_score(pairs)
    cross = CrossEncoder(str(run_dir), activation_fn=torch.nn.Identity()).predict(pairs)
    np.testing.assert_allclose(ours, flag, atol=1e-5)
    np.testing.assert_allclose(ours, cross, atol=1e-5)
