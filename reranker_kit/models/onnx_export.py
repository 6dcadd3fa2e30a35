"""ONNX export of a fine-tuned reranker for CPU serving, and the ONNX Runtime model `Reranker` loads.

    python rerank.py export outputs/reranker-finetuned-20261127-101500 --onnx [--int8]

writes `<run>/onnx/model.onnx` (fp32, exported by optimum) and, with --int8, `<run>/onnx/model_int8.onnx`
(dynamic int8 quantization by ONNX Runtime), with a copy of the config and tokenizer so the subfolder
loads on its own. Nothing else in the run folder is written: the export is built in a hidden staging
folder beside it and moved into place only when complete. sentence-transformers' `CrossEncoder(run,
backend="onnx")` finds `onnx/model.onnx` there and loads it instead of exporting into the run folder.

Scoring goes through `pair_encoding.score_with`, the encoding the torch path uses, so ONNX fp32 scores
match torch (checked after each export and in the tests).
"""

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reranker_kit.basics.errors import KitError, ModelLoadError
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.models.loading import load_tokenizer

logger = logging.getLogger(__name__)

ONNX_SUBFOLDER = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
# Pairs scored by torch and ONNX after an export: short, medium and truncated passages.
CHECK_PAIRS = [("CLB tuyển thành viên khi nào ạ?", "CLB tuyển thành viên mới vào tháng 9 hằng năm. " * repeat)
               for repeat in (1, 4, 60)] + [("phí thành viên", "Phí thành viên là 100.000 đồng mỗi kỳ.")]


def onnx_file(model_dir: Path, int8: bool) -> Path:
    return Path(model_dir) / ONNX_SUBFOLDER / (INT8_FILE if int8 else FP32_FILE)


class OnnxCrossEncoder:
    """An exported cross-encoder run by ONNX Runtime on the CPU: padded batch in, one logit per pair out."""

    def __init__(self, path: Path, config, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [model_input.name for model_input in self.session.get_inputs()]
        self.config = config
        self.path = path

    def logits(self, batch) -> np.ndarray:
        feed = {name: batch[name].numpy() for name in self.input_names}
        return self.session.run(None, feed)[0].reshape(-1).astype(np.float32)


def load_onnx_model(model_name: str, int8: bool, threads: int | None = None):
    """(OnnxCrossEncoder, tokenizer, model folder) of an exported run; the tokenizer is the run's own."""
    from transformers import AutoConfig

    model_dir = Path(resolve_model_name(model_name))
    path = onnx_file(model_dir, int8)
    if not path.is_file():
        raise ModelLoadError(f"{model_name}: no ONNX export ({path} is missing). Export it first: python rerank.py "
                             f"export {model_name} --onnx{' --int8' if int8 else ''}")
    model = OnnxCrossEncoder(path, AutoConfig.from_pretrained(model_dir), threads)
    return model, load_tokenizer(str(model_dir), model_name), str(model_dir)


def export_onnx(model_dir: Path, int8: bool) -> list[Path]:
    """Writes the fp32 export (unless present) and, if asked, the int8 one; returns the files written."""
    model_dir = Path(model_dir)
    wanted = [FP32_FILE, INT8_FILE] if int8 else [FP32_FILE]
    existing = [name for name in wanted if onnx_file(model_dir, name == INT8_FILE).is_file()]
    if existing == wanted:
        raise KitError(f"{model_dir / ONNX_SUBFOLDER} already holds {', '.join(existing)}; delete that folder to "
                       "export again (nothing was changed)")
    staging = Path(tempfile.mkdtemp(prefix=".onnx-export-", dir=model_dir))
    os.chmod(staging, model_dir.stat().st_mode & 0o777)  # mkdtemp's 0700 would make onnx/ private.
    try:
        fp32 = onnx_file(model_dir, int8=False)
        if not fp32.is_file():
            _export_fp32(model_dir, staging)
            fp32 = staging / FP32_FILE
        if int8:
            _quantize_int8(fp32, staging / INT8_FILE)
        return _move_into_place(staging, model_dir / ONNX_SUBFOLDER)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_fp32(model_dir: Path, staging: Path) -> None:
    from optimum.exporters.onnx import main_export

    # Our own check (check_export) replaces optimum's validation: it scores with the kit's encoding.
    main_export(str(model_dir), staging, task="text-classification", do_validation=False)


def _quantize_int8(fp32: Path, output: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Dynamic quantization: int8 weights, activations quantized per batch at run time, no calibration data.
    # It logs a line per tensor on the root logger; only its warnings are worth showing.
    level = logging.root.level
    logging.root.setLevel(logging.WARNING)
    try:
        quantize_dynamic(fp32, output, weight_type=QuantType.QInt8)
    finally:
        logging.root.setLevel(level)


def _move_into_place(staging: Path, onnx_dir: Path) -> list[Path]:
    """A new export becomes onnx/ in one rename; an int8 file joins an existing export by a rename too."""
    if not onnx_dir.exists():
        os.replace(staging, onnx_dir)
        return sorted(onnx_dir.glob("*.onnx"))
    written = []
    for path in staging.glob("*.onnx"):
        os.replace(path, onnx_dir / path.name)
        written.append(onnx_dir / path.name)
    return written


@dataclass(frozen=True)
class ExportCheck:
    """How far an export's scores are from torch's on the check pairs, and whether the rankings agree."""

    pairs: int
    max_difference: float
    top_k: int
    top_k_agreement: float  # Share of the check queries whose top-k documents are the same set as torch's.


def check_export(model_dir: Path, int8: bool, pairs: list[tuple[str, str]] | None = None,
                 group_sizes: list[int] | None = None, top_k: int = 5) -> dict[str, ExportCheck]:
    """|ONNX - torch| on `pairs` (default CHECK_PAIRS) for each export present, and top-k agreement per group.

    `group_sizes` splits `pairs` into queries (each query's candidates in a row), so the check measures what
    users will see: whether the export changes a query's top k.
    """
    pairs = pairs or CHECK_PAIRS
    group_sizes = group_sizes or [len(pairs)]
    # Deferred: both import torch, which `rerank.py export`'s flag checks must not wait for.
    from reranker_kit.models.loading import load_cross_encoder
    from reranker_kit.models.pair_encoding import position_limit, score_pairs, score_with

    model, tokenizer, _ = load_cross_encoder(str(model_dir))
    max_length = min(512, position_limit(model.config))
    reference = score_pairs(model, tokenizer, pairs, max_length, batch_size=8)
    checks = {}
    for quantized in (False, True) if int8 else (False,):
        onnx_model = OnnxCrossEncoder(onnx_file(model_dir, quantized), model.config)
        scores = score_with(onnx_model.logits, tokenizer, pairs, max_length, batch_size=8)
        checks[INT8_FILE if quantized else FP32_FILE] = ExportCheck(
            pairs=len(pairs), max_difference=float(np.max(np.abs(scores - reference))), top_k=top_k,
            top_k_agreement=_top_k_agreement(reference, scores, group_sizes, top_k))
    return checks


def _top_k_agreement(reference: np.ndarray, scores: np.ndarray, group_sizes: list[int], top_k: int) -> float:
    same, start = 0, 0
    for size in group_sizes:
        ours, theirs = reference[start:start + size], scores[start:start + size]
        same += set(np.argsort(-ours, kind="stable")[:top_k]) == set(np.argsort(-theirs, kind="stable")[:top_k])
        start += size
    return same / len(group_sizes)




