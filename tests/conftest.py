"""Shared fixtures: small real data cut from the shipped sample, and tiny models built offline."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS_CSV = ROOT / "CLB_PROPTIT.csv"
TRAIN_XLSX = ROOT / "train_data_proptit.xlsx"
TEST_XLSX = ROOT / "test_data_proptit.xlsx"


def write_queries(path: Path, rows: list[dict]) -> Path:
    columns = ["Query", "Ground truth document", "Ground truth answer", "Difficulty"]
    pd.DataFrame(rows, columns=columns).to_excel(path, index=False)
    return path


def write_corpus(path: Path, rows: list[tuple]) -> Path:
    pd.DataFrame(rows, columns=["STT", "Văn bản"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> dict[str, Path]:
    """The first 30 sample documents and the sample queries answered only by them.

    Real club-schema text, small enough that a training smoke run takes seconds on CPU.
    """
    from data_loading import parse_ground_truth

    folder = tmp_path_factory.mktemp("small_data")
    corpus = pd.read_csv(CORPUS_CSV)
    kept = corpus[corpus["STT"] <= 30]
    kept.to_csv(folder / "corpus.csv", index=False)
    paths = {"corpus": folder / "corpus.csv"}
    for name, source in (("train", TRAIN_XLSX), ("test", TEST_XLSX)):
        queries = pd.read_excel(source, dtype=object)
        inside = queries["Ground truth document"].map(lambda cell: max(parse_ground_truth(cell)) <= 30)
        queries[inside].to_excel(folder / f"{name}.xlsx", index=False)
        paths[name] = folder / f"{name}.xlsx"
    return paths


@pytest.fixture(scope="session")
def tiny_xlmr_model(tmp_path_factory) -> Path:
    """An XLM-RoBERTa sequence classifier with random weights and a small cased tokenizer trained here.

    It exercises the architecture the club fine-tunes (namdp-ptit/ViRanker, bge-reranker-v2-m3):
    RoBERTa position offsets, <s> A </s></s> B </s> pairs, no token type ids.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_xlmr")
    texts = pd.read_csv(CORPUS_CSV)["Văn bản"].tolist() + pd.read_excel(TRAIN_XLSX)["Query"].tolist()
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=2000, special_tokens=special,
                                                                 unk_token="<unk>"))
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    fast = XLMRobertaTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=512)
    config = XLMRobertaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=64, max_position_embeddings=130,
                              num_labels=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    model = XLMRobertaForSequenceClassification(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def run_script(script: str, *args: str, cwd: Path, timeout: int = 600, **popen) -> subprocess.CompletedProcess:
    """Runs one of the project's scripts as a user would, from `cwd`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


# Small settings: seconds per run on 2 CPU cores.
QUICK = ["--max_seq_length", "96", "--batch_size", "8", "--gradient_accumulation_steps", "1", "--eval_steps", "2",
         "--save_steps", "2", "--dev_top_n", "5", "--logging_steps", "1", "--eval_batch_size", "64"]


# README's quick start: bench/quality_cv.sh's CPU settings, about 10 minutes on 2 cores.
CPU_RECIPE = ["--base_model", "bundled-minilm", "--max_seq_length", "128", "--epochs", "2", "--lr", "5e-5",
              "--batch_size", "8", "--gradient_accumulation_steps", "1"]


def data_flags(small_data):
    return ["--corpus_csv", str(small_data["corpus"]), "--train_xlsx", str(small_data["train"])]


@pytest.fixture(scope="session")
def trained_run(small_data, tmp_path_factory):
    """One finished bundled-model run, shared by the tests that read its outputs."""
    workdir = tmp_path_factory.mktemp("trained")
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--max_steps", "4", *QUICK, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (workdir / "outputs").glob("reranker-finetuned-*")
    return run_dir, result
