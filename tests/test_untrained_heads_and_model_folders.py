"""Models without a trained ranking head, and model folders that are no reranker, where a reranker is expected.

A base without a trained head (the bundled MiniLM) gets a seeded fresh head, so it scores the same in every
load; `Reranker` says its scores mean nothing and `rerank.py serve` refuses it unless told. An embedder run,
a folder without tokenizer files and arguments of the wrong type are refused with a message naming them.
"""

import json
import logging
import shutil
import time

import httpx
import pytest
import torch
from test_serving import running, wait_healthy

from reranker_kit.basics.errors import KitError, ModelLoadError
from reranker_kit.basics.model_files import BUNDLED_MODEL_ALIAS, bundled_model_path
from reranker_kit.commands.serve import pick_model
from reranker_kit.models.loading import UNTRAINED_HEAD_SEED
from reranker_kit.models.reranker import Reranker
from reranker_kit.serving.app import create_app
from reranker_kit.serving.settings import ServingSettings

PAIRS = [("CLB tuyển thành viên khi nào ạ?", "CLB tuyển thành viên mới vào tháng 9 hằng năm."),
         ("phí thành viên bao nhiêu", "Phí thành viên là 100.000 đồng mỗi kỳ."),
         ("lịch sinh hoạt", "CLB sinh hoạt vào tối thứ năm hằng tuần.")]
MAX_LENGTH = 64


def copy_of_bundled_model(folder, keep=lambda name: True):
    """The bundled MiniLM's files (a sentence-transformers folder), those `keep` accepts, in `folder`."""
    folder.mkdir(parents=True)
    for path in bundled_model_path().iterdir():
        if keep(path.name):
            (shutil.copytree if path.is_dir() else shutil.copy)(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def embedder_run(tmp_path_factory):
    """What fine_tune_embedder.py leaves: a sentence-transformers MiniLM, a checkpoint, training_info.json."""
    run_dir = copy_of_bundled_model(tmp_path_factory.mktemp("runs") / "outputs" / "embedder-finetuned-20261127-101500")
    copy_of_bundled_model(run_dir / "checkpoint-4")
    (run_dir / "training_info.json").write_text(json.dumps({"kind": "embedder", "base_model": BUNDLED_MODEL_ALIAS,
                                                            "finished_at": "2026-11-27T10:20:00"}), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="module")
def without_tokenizer(tmp_path_factory):
    return copy_of_bundled_model(tmp_path_factory.mktemp("models") / "no-tokenizer",
                                 keep=lambda name: name in ("config.json", "model.safetensors"))


@pytest.fixture(scope="module")
def classifier_without_head(tmp_path_factory):
    """A config that promises a one-logit classifier over weights that hold none (the head would be new)."""
    folder = copy_of_bundled_model(tmp_path_factory.mktemp("models") / "headless-classifier")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(architectures=["BertForSequenceClassification"], id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


# A base without a trained head: seeded, labelled, refused by the server unless allowed.

def test_a_base_without_a_trained_head_scores_the_same_on_every_load_and_says_so(caplog):
    scores = []
    with caplog.at_level(logging.WARNING, logger="reranker_kit.models.reranker"):
        for global_seed in (1, 2):  # Whatever else the process drew before, the head is the same.
            torch.manual_seed(global_seed)
            state = torch.random.get_rng_state()
            reranker = Reranker(BUNDLED_MODEL_ALIAS, device="cpu", max_length=MAX_LENGTH)
            assert torch.equal(torch.random.get_rng_state(), state), "loading moved the caller's random state"
            scores.append(reranker.compute_score(PAIRS))
    assert scores[0] == scores[1]
    assert reranker.head_is_trained is False and reranker.head_seed == UNTRAINED_HEAD_SEED
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2  # One per load.
    assert "bundled-minilm has no trained ranking head" in warnings[0] and "mean nothing" in warnings[0]


def test_the_seeded_head_is_the_one_a_training_run_with_the_default_seed_starts_from():
    from transformers import set_seed

    from reranker_kit.models.loading import load_cross_encoder

    set_seed(42)  # fine_tune_reranker.py's default --seed, set before it loads --base_model.
    trained_from, _, _ = load_cross_encoder(BUNDLED_MODEL_ALIAS)
    reranker = Reranker(BUNDLED_MODEL_ALIAS, device="cpu")
    assert torch.equal(trained_from.classifier.weight, reranker.model.classifier.weight)


def test_a_fine_tuned_run_has_a_trained_head(trained_run, caplog):
    with caplog.at_level(logging.WARNING, logger="reranker_kit.models.reranker"):
        reranker = Reranker(str(trained_run[0]), device="cpu", max_length=MAX_LENGTH)
    assert reranker.head_is_trained is True and reranker.head_seed is None
    assert not [record for record in caplog.records if "ranking head" in record.getMessage()]


def test_serve_refuses_a_plain_encoder_before_starting_unless_allowed():
    with pytest.raises(KitError, match="has no trained ranking head.*`allow_untrained_head`"):
        pick_model(BUNDLED_MODEL_ALIAS, "outputs")
    assert pick_model(BUNDLED_MODEL_ALIAS, "outputs", allow_untrained_head=True) == BUNDLED_MODEL_ALIAS


def test_a_classifier_whose_weights_lack_the_head_is_refused_once_loaded(classifier_without_head):
    assert pick_model(str(classifier_without_head), "outputs") == str(classifier_without_head)  # The config passes.
    settings = ServingSettings(model=str(classifier_without_head), device="cpu", max_length=MAX_LENGTH)
    with running(create_app(settings)) as base_url:
        deadline = time.monotonic() + 60
        health = httpx.get(f"{base_url}/health", timeout=5)
        while health.json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
            health = httpx.get(f"{base_url}/health", timeout=5)
    assert health.status_code == 503 and health.json()["status"] == "failed"
    assert "no trained ranking head" in health.json()["error"] and "`allow_untrained_head`" in health.json()["error"]


def test_a_base_served_on_purpose_scores_as_reranker_does_in_another_load():
    settings = ServingSettings(model=BUNDLED_MODEL_ALIAS, device="cpu", max_length=MAX_LENGTH, allow_untrained_head=True)
    query, texts = PAIRS[0][0], [passage for _, passage in PAIRS]
    with running(create_app(settings)) as base_url:
        wait_healthy(base_url)
        served = httpx.post(f"{base_url}/rerank", json={"query": query, "texts": texts, "raw_scores": True},
                            timeout=30).json()
        info = httpx.get(f"{base_url}/info", timeout=5).json()
    expected = Reranker(BUNDLED_MODEL_ALIAS, device="cpu", max_length=MAX_LENGTH).compute_score(
        [(query, text) for text in texts])
    for item in served:
        assert abs(item["score"] - expected[item["index"]]) <= 1e-6
    assert info["head"] == {"trained": False, "seed": UNTRAINED_HEAD_SEED}


# Folders that are no reranker.

def test_an_embedder_run_is_refused_where_a_reranker_is_expected(embedder_run):
    for folder in (embedder_run, embedder_run / "checkpoint-4"):
        with pytest.raises(ModelLoadError, match="is an embedding model") as refused:
            Reranker(str(folder), device="cpu")
        assert f"--embedding_model {embedder_run} --retriever hybrid" in str(refused.value)
        with pytest.raises(KitError, match="is an embedding model"):
            pick_model(str(folder), "outputs", allow_untrained_head=True)


def test_a_folder_without_tokenizer_files_is_refused_naming_them(without_tokenizer):
    with pytest.raises(ModelLoadError, match="holds no tokenizer files") as refused:
        Reranker(str(without_tokenizer), device="cpu")
    message = str(refused.value)
    assert str(without_tokenizer) in message and "tokenizer.json" in message and "vocab.txt" in message
    assert "it holds config.json, model.safetensors" in message
    with pytest.raises(KitError, match="holds no tokenizer files"):
        pick_model(str(without_tokenizer), "outputs", allow_untrained_head=True)


# Every argument of Reranker has its type checked before anything loads.

@pytest.mark.parametrize(("arguments", "message"), [
    ({"batch_size": 1.5}, "batch_size must be a whole number (an int), got 1.5 (float)"),
    ({"batch_size": "32"}, "batch_size must be a whole number (an int), got '32' (str)"),
    ({"max_length": 512.0}, "max_length must be a whole number"),
    ({"max_length": True}, "max_length must be a whole number"),
    ({"normalize": "yes"}, "normalize must be True or False"),
    ({"show_progress_bar": 1}, "show_progress_bar must be True or False"),
    ({"use_fp16": "false"}, "use_fp16 must be True, False or None"),
    ({"device": 0}, "device must be a string such as 'cpu'"),
    ({"model_name": None}, "model_name must be a model folder"),
    ({"backend": ["torch"]}, "backend must be one of"),
])
def test_reranker_checks_the_type_of_every_argument(arguments, message):
    with pytest.raises((TypeError, ValueError)) as refused:
        Reranker(**{"model_name": BUNDLED_MODEL_ALIAS, **arguments})
    assert message in str(refused.value)


def test_reranker_takes_numpy_whole_numbers_and_a_path(trained_run):
    import numpy as np

    reranker = Reranker(trained_run[0], device="cpu", max_length=np.int64(MAX_LENGTH), batch_size=np.int32(2))
    assert reranker.batch_size == 2 and type(reranker.max_length) is int
    assert len(reranker.compute_score(PAIRS)) == 3
