"""What a user sees around a training run: progress bars, trackers, a Hub-ready model card, Hub flags."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import QUICK, ROOT, data_flags, run_script

ETA_BAR = re.compile(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d")  # tqdm: "3/4 [00:05<00:01, ...": elapsed<remaining.
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:root|home|tmp|content|kaggle|Users|usr|var|opt|mnt)/")


@pytest.fixture(scope="module")
def tracked_run(small_data, tmp_path_factory):
    """A run with TensorBoard, Hub names, and neither answers nor corpus sentences added."""
    workdir = tmp_path_factory.mktemp("tracked")
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--max_steps", "2", *QUICK, "--report_to", "tensorboard", "--no-augment_with_answers",
                        "--pseudo_queries_per_document", "0", "--hub_model_id", "proptit-ai/reranker-test",
                        "--hub_dataset_id", "proptit-ai/club-queries", "--output_dir", str(workdir / "run"),
                        cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "run", result


def test_training_shows_a_progress_bar_with_an_eta_and_logs_lines_not_dicts(trained_run):
    _, result = trained_run
    assert ETA_BAR.search(result.stderr), result.stderr[-2000:]
    assert "dev evaluation:" in result.stderr  # The bar while the dev queries are reranked.
    assert re.search(r"INFO reranker_kit\.finetune\.trainer: step 1/4: loss \d", result.stderr)
    assert "{'loss'" not in result.stdout + result.stderr and "{'eval_" not in result.stdout + result.stderr
    assert result.stdout.strip() == ""  # Progress and logs go to stderr.


def test_report_to_tensorboard_writes_event_files_in_the_run_folder(tracked_run):
    run_dir, _ = tracked_run
    events = list((run_dir / "runs").rglob("events.out.tfevents.*"))
    assert events and all(path.stat().st_size > 0 for path in events)


def test_model_card_parses_as_hub_metadata_and_matches_the_flags(tracked_run):
    from huggingface_hub import ModelCard

    run_dir, _ = tracked_run
    text = (run_dir / "README.md").read_text(encoding="utf-8")
    metadata = ModelCard.load(run_dir / "README.md").data.to_dict()
    assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert metadata["language"] == ["vi"] and metadata["pipeline_tag"] == "text-ranking"
    assert metadata["library_name"] and {"reranker", "cross-encoder"} <= set(metadata["tags"])
    assert metadata["datasets"] == ["proptit-ai/club-queries"]
    (model_index,) = metadata["model-index"]
    assert model_index["name"] == "reranker-test"
    dev = json.loads((run_dir / "dev_metrics.json").read_text())
    reported = {metric["type"]: metric["value"] for metric in model_index["results"][0]["metrics"]}
    assert reported["mrr@5"] == pytest.approx(dev["mrr@5"], abs=1e-4) and len(reported) == 9

    info = json.loads((run_dir / "training_info.json").read_text())
    assert f"- {info['data']['train_queries']} labelled queries from `train.xlsx`" in text
    assert "no ground-truth answers as extra queries (`augment_with_answers` off)" in text
    assert "no corpus sentences as extra queries (`pseudo_queries_per_document` 0)" in text
    assert "| `max_steps` | 2 |" in text and "| `pseudo_queries_per_document` | 0 |" in text
    assert 'Reranker(model_name="proptit-ai/reranker-test")' in text and "CrossEncoder(" in text
    assert "FlagReranker(" in text


@pytest.mark.parametrize("fixture", ["tracked_run", "trained_run"])
def test_model_card_names_no_path_of_the_training_machine(fixture, request):
    run_dir, _ = request.getfixturevalue(fixture)
    text = (run_dir / "README.md").read_text(encoding="utf-8")
    assert not ABSOLUTE_PATH.search(text), ABSOLUTE_PATH.search(text)
    assert str(run_dir.parent) not in text and "site-packages" not in text


def test_model_card_counts_the_answers_and_corpus_sentences_a_default_run_used(trained_run):
    run_dir, _ = trained_run
    text = (run_dir / "README.md").read_text(encoding="utf-8")
    data = json.loads((run_dir / "training_info.json").read_text())["data"]
    assert data["answer_queries"] > 0 and data["corpus_sentence_queries"] > 0
    assert f"- {data['answer_queries']} ground-truth answers of those queries" in text
    per_document = json.loads((run_dir / "training_info.json").read_text())["arguments"]["pseudo_queries_per_document"]
    assert f"- {data['corpus_sentence_queries']} sentences of the corpus's documents (up to {per_document} per document)" in text
    assert data["augmented_train_queries"] == (data["train_queries"] + data["answer_queries"]
                                               + data["corpus_sentence_queries"])


def test_hub_and_tracker_flags_reach_the_training_arguments(tmp_path):
    from reranker_kit.commands.train_reranker import parse_settings_from
    from reranker_kit.training.run import training_arguments

    settings = parse_settings_from(["--push_to_hub", "--hub_model_id", "proptit-ai/reranker", "--hub_private_repo",
                                    "--report_to", "tensorboard"])
    arguments = training_arguments(settings, tmp_path, (10, 10), has_dev=True, select_best=True)
    assert arguments.push_to_hub and arguments.hub_model_id == "proptit-ai/reranker" and arguments.hub_private_repo
    assert arguments.report_to == ["tensorboard"] and arguments.logging_dir == str(tmp_path / "runs")
    assert not arguments.disable_tqdm
    assert arguments.learning_rate == settings.optimisation.lr and arguments.seed == arguments.data_seed == 42
    plain = training_arguments(parse_settings_from([]), tmp_path, (10, 10), has_dev=True, select_best=True)
    assert plain.report_to == [] and not plain.push_to_hub  # "none": no tracker.


def test_push_uploads_the_card_in_the_run_folder_and_no_machine_paths(tracked_run, monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    from reranker_kit.training.hub import files_to_push, push_run

    run_dir, _ = tracked_run
    calls = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: calls.update(create=(repo_id, kwargs)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kwargs: calls.update(upload=kwargs))
    assert push_run(run_dir, "proptit-ai/reranker-test", private=True) == "proptit-ai/reranker-test"
    assert calls["create"] == ("proptit-ai/reranker-test", {"private": True, "exist_ok": True})
    upload = calls["upload"]
    assert upload["folder_path"] == run_dir and upload["repo_id"] == "proptit-ai/reranker-test"
    all_files = sorted(path.relative_to(run_dir).as_posix() for path in run_dir.rglob("*") if path.is_file())
    pushed = list(filter_repo_objects(all_files, ignore_patterns=upload["ignore_patterns"]))
    assert pushed == files_to_push(run_dir)
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "dev_metrics.json"} <= set(pushed)
    assert not [name for name in pushed if name.startswith(("checkpoint-", "runs/"))]
    assert "training_info.json" not in pushed and "trainer_state.json" not in pushed  # They hold absolute paths.


def _train_with(tmp_path, *flags, env_changes=None):
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(PYTHONUNBUFFERED="1", HF_HOME=str(tmp_path / "hf_home"), **(env_changes or {}))
    return subprocess.run([sys.executable, str(ROOT / "fine_tune_reranker.py"), "--base_model", "bundled-minilm",
                           *flags], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flags, env_changes, message", [
    (["--push_to_hub"], {"HF_HUB_OFFLINE": "0"}, "needs a Hugging Face token: run `huggingface-cli login`"),
    (["--push_to_hub"], {"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1 is set"),
    (["--hub_private_repo"], {}, "--hub_private_repo only matters with --push_to_hub"),
    (["--push_to_hub", "--cv_folds", "3"], {}, "cross-validation (--cv_folds) keeps no model to push"),
    (["--report_to", "mlflow"], {}, "invalid choice: 'mlflow'"),
])
def test_hub_and_tracker_mistakes_exit_2_before_anything_is_written(small_data, tmp_path, flags, env_changes, message):
    result = _train_with(tmp_path, *data_flags(small_data), *flags, env_changes=env_changes)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_missing_tracker_is_named_with_the_install_command(small_data, tmp_path):
    result = _train_with(tmp_path, *data_flags(small_data), "--report_to", "wandb")
    assert result.returncode == 2
    assert "--report_to wandb needs the package wandb, which is not installed: pip install wandb" in result.stderr
