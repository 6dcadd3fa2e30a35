"""The fine-tuning core both CLIs share (issue #31), part by part: CPU sizing, the runner's `latest` embedder,
what a finished run keeps, cross-validation's fold files, the settings' checks, and the quiet library log.

The end-to-end behaviour of both CLIs is in test_resume_third_pass.py (parametrised over both jobs),
test_fine_tune.py, test_fine_tune_embedder.py and test_quick_start_e5.py.
"""

import json
import logging

import pytest

from reranker_kit.basics.errors import SettingError
from reranker_kit.basics.library_noise import quiet_false_advice
from reranker_kit.commands.tracking import check_tracker_installed
from reranker_kit.embedder.arguments import EmbedderSettings
from reranker_kit.embedder.result import EmbedderDev
from reranker_kit.embedder.trainer import EmbedderLoss
from reranker_kit.finetune import cpu_sizing
from reranker_kit.finetune.cross_validation import FOLD_RESULT_FILE, read_fold_result
from reranker_kit.finetune.outputs import remove_intermediate_checkpoints, run_info
from reranker_kit.finetune.runner import with_latest_embedder
from reranker_kit.training.arguments import RerankerSettings


def test_cpu_sizing_replaces_only_what_the_user_did_not_give(monkeypatch, caplog):
    monkeypatch.setattr(cpu_sizing, "gpu_available", lambda: False)
    settings = RerankerSettings.from_arguments({"base_model": "bundled-minilm", "epochs": 3.0})
    with caplog.at_level(logging.INFO, logger=cpu_sizing.__name__):
        sized = cpu_sizing.cpu_sized(settings, given={"epochs", "base_model"})
    assert sized.model.max_seq_length == 128 and sized.optimisation.batch_size == 16
    assert sized.optimisation.epochs == 3.0  # Given: kept as given.
    assert not sized.model.freeze_word_embeddings  # MiniLM's 30,522-word vocabulary is not large.
    (line,) = [record.getMessage() for record in caplog.records]
    assert "`max_seq_length` 128" in line and "`epochs`" not in line
    monkeypatch.setattr(cpu_sizing, "gpu_available", lambda: True)
    assert cpu_sizing.cpu_sized(settings, given=set()) == settings  # A GPU: the defaults as they are.


def test_a_large_vocabulary_gets_its_word_embeddings_frozen_on_a_cpu(monkeypatch):
    monkeypatch.setattr(cpu_sizing, "gpu_available", lambda: False)
    monkeypatch.setattr(cpu_sizing, "model_shape", lambda name: {"vocab_size": 250_037})
    settings = EmbedderSettings.from_arguments({"base_model": "bundled-e5"})
    assert cpu_sizing.cpu_sized(settings, given=set()).model.freeze_word_embeddings
    assert not cpu_sizing.cpu_sized(settings, given={"freeze_word_embeddings"}).model.freeze_word_embeddings


def test_the_settings_refuse_values_naming_the_setting():
    with pytest.raises(SettingError, match="`dev_ratio` must be in") as refused:
        RerankerSettings.from_arguments({"dev_ratio": 1.5}).validate()
    assert refused.value.setting == "dev_ratio"
    with pytest.raises(SettingError, match="needs `teacher_model`"):
        EmbedderSettings.from_arguments({"filter_false_negatives": True}).validate()
    assert "mini_batch_size" in EmbedderSettings.from_arguments({}).ignored()  # Only cached_mnrl reads it.
    nested = EmbedderSettings.from_arguments({"optimisation": {"lr": 1e-4}, "data": {"dev_ratio": 0.3}})
    assert nested.optimisation.lr == 1e-4 and nested.data.dev_ratio == 0.3  # Older embedder runs nested them.


def test_latest_embedder_is_the_newest_finished_run_or_a_clear_refusal(tmp_path):
    settings = RerankerSettings.from_arguments({"embedding_model": "latest", "runs_root": str(tmp_path)})
    with pytest.raises(SettingError, match="no finished embedder run under"):
        with_latest_embedder(settings)
    run = tmp_path / "embedder-finetuned-20261201-100000"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "training_info.json").write_text(json.dumps({"kind": "embedder", "finished_at": "2026-12-01T10:00:00"}))
    assert with_latest_embedder(settings).negatives.embedding_model == str(run)


def test_a_finished_run_drops_its_checkpoints_unless_asked_to_keep_them(tmp_path):
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "optimizer.pt").write_bytes(b"x" * 100)
    remove_intermediate_checkpoints(tmp_path, keep=True)
    assert len(list(tmp_path.glob("checkpoint-*"))) == 2
    remove_intermediate_checkpoints(tmp_path, keep=False)
    assert list(tmp_path.glob("checkpoint-*")) == []
    info = run_info(tmp_path, RerankerSettings.from_arguments({}), "reranker", started=0.0, specific={"final_step": 4})
    assert info["kind"] == "reranker" and info["starts"][0]["arguments"]["lr"] == 2e-5 and info["final_step"] == 4


def test_a_damaged_fold_result_trains_the_fold_again(tmp_path, caplog):
    (tmp_path / FOLD_RESULT_FILE).write_text("{cut short")
    with caplog.at_level(logging.WARNING):
        assert read_fold_result(tmp_path, lambda payload: payload) is None
    assert "the fold trains again" in caplog.text
    (tmp_path / FOLD_RESULT_FILE).write_text(json.dumps({"dev": 1}))
    assert read_fold_result(tmp_path, lambda payload: payload["dev"]) == 1


def test_an_embedder_fold_result_round_trips_through_its_file():
    from reranker_kit.embedder.dev_evaluation import EncoderDevMetrics
    from reranker_kit.fusion import choose_fusion

    per_query = {f"minmax:{w / 10:.1f}": {"q": {f"{m}@{k}": 0.5 for m in ("hit", "mrr") for k in (3, 5, 7)}}
                 for w in range(11)}
    encoder = EncoderDevMetrics(dense={"hit@3": 0.5}, bm25={"hit@3": 0.4}, hybrid=choose_fusion(per_query, "mrr@5"))
    dev = EmbedderDev(encoder, encoder, "recall@20")
    again = EmbedderDev.from_json(json.loads(json.dumps(dev.as_json())))
    assert again == dev and again.fine_tuned.dense_per_query("hit@3") == [0.5]


def test_the_embedder_loss_is_chosen_by_name():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    from reranker_kit.basics.model_files import resolve_model_name

    model = SentenceTransformer(resolve_model_name("bundled-minilm"), device="cpu")
    assert isinstance(EmbedderLoss("mnrl").build(model), MultipleNegativesRankingLoss)
    assert isinstance(EmbedderLoss("cached_mnrl", 4).build(model), CachedMultipleNegativesRankingLoss)


def test_the_reranker_to_train_freezes_its_word_embeddings_when_asked():
    from reranker_kit.training.modeling import load_tokenizer_and_model

    settings = RerankerSettings.from_arguments({"base_model": "bundled-minilm", "freeze_word_embeddings": True,
                                                "max_seq_length": 4096})
    model, _, _, max_length = load_tokenizer_and_model(settings)
    assert not model.get_input_embeddings().weight.requires_grad and max_length == 512  # Capped at its positions.


def test_a_tracker_that_is_not_installed_is_refused_before_training(monkeypatch):
    import argparse
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit):
        check_tracker_installed(argparse.ArgumentParser(), "wandb")
    check_tracker_installed(argparse.ArgumentParser(), "none")


def test_false_advice_about_a_head_the_kit_trains_is_kept_out_of_the_log():
    quiet_false_advice()
    log = logging.getLogger("transformers.modeling_utils")  # transformers' loggers do not propagate to the root.
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log.addHandler(handler)
    try:
        log.warning("Some weights of X were not initialized from the model checkpoint at m and are newly initialized: "
                    "['classifier.bias', 'bert.pooler.dense.weight']\nYou should probably TRAIN this model")
        log.warning("Some weights of X were not initialized from the model checkpoint at m and are newly initialized: "
                    "['bert.encoder.layer.0.attention.self.query.weight']\nYou should probably TRAIN this model")
        logging.getLogger("transformers.tokenization_utils_base").warning("... set the `fix_mistral_regex=True` flag")
    finally:
        log.removeHandler(handler)
    assert len(seen) == 1 and "encoder.layer.0" in seen[0]  # A model that misses more than its head still says so.


def test_run_folders_written_before_the_core_are_read_and_evaluated(trained_run, embedder_run, small_data, tmp_path):
    """tests/fixtures keeps the JSON files of a reranker and an embedder run of the kit before the shared core
    (the embedder's settings nested by group, the reranker's old verdict words); paired with fresh weights,
    both load in the settings and main.py ranks with them."""
    import shutil

    from reranker_kit.run_folder import newest_finished_run, stored_hybrid_weight, stored_verdict

    from conftest import ROOT, run_script

    fixtures, runs_root = ROOT / "tests" / "fixtures", tmp_path / "outputs"
    embedder = shutil.copytree(embedder_run[0], runs_root / "embedder-finetuned-20261203-173404")
    reranker = shutil.copytree(trained_run[0], runs_root / "reranker-finetuned-20261203-173737")
    for run_dir, fixture in ((embedder, "embedder_run_before_core"), (reranker, "reranker_run_before_core")):
        for path in (fixtures / fixture).glob("*.json"):
            shutil.copy(path, run_dir / path.name)
    old_embedder = json.loads((embedder / "training_info.json").read_text())
    assert "optimisation" in old_embedder["arguments"]  # Nested by group, as embedder runs were.
    assert EmbedderSettings.from_arguments(old_embedder["arguments"]).optimisation.max_steps == 2
    assert RerankerSettings.from_arguments(json.loads((reranker / "training_info.json").read_text())["arguments"])
    assert stored_hybrid_weight(embedder) == json.loads((embedder / "hybrid.json").read_text())["dense_weight"]["run"]
    assert stored_verdict(reranker)["saved"] == "base"  # Its words were "no gain"; what it kept reads the same.
    assert newest_finished_run(runs_root) == reranker
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                        "--retriever", "hybrid", "--pretrained_reranker", "none", "--top_n", "5", "--runs_root",
                        str(runs_root), "--embedding_cache_dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"embedding model: {embedder} (newest finished embedder run" in result.stderr
    assert f"{reranker}: verdict within noise: the run kept the base weights" in result.stderr


def test_reranker_trainer_keeps_loss_keys_from_the_model_and_skips_evaluation_without_dev_queries(tmp_path):
    import torch
    from transformers import TrainingArguments

    from reranker_kit.testing import XLMR_TINY_SHAPE, xlmr_classifier
    from reranker_kit.training.losses import ListwiseSoftmaxLoss
    from reranker_kit.training.trainer import RerankerTrainer

    torch.manual_seed(0)
    model = xlmr_classifier({**XLMR_TINY_SHAPE, "vocab_size": 50})
    trainer = RerankerTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[]),
                              loss=ListwiseSoftmaxLoss())
    # Two groups of 3 and 2 rows: group_sizes is the loss's, and the model would reject it as an input.
    inputs = {"input_ids": torch.randint(3, 50, (5, 8)), "attention_mask": torch.ones(5, 8, dtype=torch.long),
              "group_sizes": torch.tensor([3, 2])}
    loss, outputs = trainer.compute_loss(model, inputs, return_outputs=True)
    logits = outputs.logits.view(-1).float()
    expected = (-torch.log_softmax(logits[:3], 0)[0] - torch.log_softmax(logits[3:], 0)[0]) / 2
    assert torch.allclose(loss, expected)
    assert trainer.evaluate() == {}
