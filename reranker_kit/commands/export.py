"""`python rerank.py export RUN --onnx [--int8]`: the ONNX export of a fine-tuned run, checked against torch."""

import argparse
import logging
from pathlib import Path

from reranker_kit.basics.errors import KitError
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.commands.common import parse_arguments
from reranker_kit.models.onnx_export import CHECK_PAIRS, check_export, export_onnx

logger = logging.getLogger("rerank")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank.py", description="Tools for a fine-tuned reranker.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="Export a model folder for CPU serving with ONNX Runtime.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    export.add_argument("model_dir", help="A finished run folder (or any saved model folder with config.json).")
    export.add_argument("--onnx", action="store_true", required=True,
                        help="Export to ONNX: writes <model_dir>/onnx/model.onnx and leaves every other file alone.")
    export.add_argument("--int8", action="store_true",
                        help="Also write onnx/model_int8.onnx, dynamically quantized to int8 (faster on CPU).")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(build_parser(), lambda args, parser: None, argv)
    model_dir = Path(args.model_dir)
    if not model_dir.is_dir():
        raise KitError(f"{model_dir}: not a folder. Give a run folder such as outputs/reranker-finetuned-..., which "
                       "the export writes into (a Hub id cannot be exported in place)")
    resolve_model_name(str(model_dir))  # A folder without config.json is not a model: say so before loading.
    written = export_onnx(model_dir, args.int8)
    logger.info("wrote %s", ", ".join(str(path) for path in written))
    for name, difference in check_export(model_dir, args.int8).items():
        logger.info("%s: scores within %.1e of torch on %d check pairs", name, difference, len(CHECK_PAIRS))
    logger.info("load it with Reranker(model_name=%r, backend=%r)", str(model_dir), "onnx_int8" if args.int8 else "onnx")
