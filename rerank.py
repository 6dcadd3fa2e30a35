"""The reranker API users import from the repository root.

    >>> from rerank import Reranker
    >>> reranker = Reranker(model_name="outputs/reranker-finetuned-20261127-101500")
    >>> scores, ranked_passages = reranker("CLB tuyển thành viên khi nào ạ?", passages)

Run as a script, it exports a fine-tuned run for CPU serving (`reranker_kit.commands.export`), or
serves one over HTTP (`reranker_kit.commands.serve`; docs/serving.md):

    python rerank.py export outputs/reranker-finetuned-20261127-101500 --onnx --int8
    python rerank.py serve outputs/reranker-finetuned-20261127-101500 --port 8080

The implementation lives in `reranker_kit.models.reranker`.
"""

from reranker_kit.models.reranker import Reranker

__all__ = ["Reranker"]

if __name__ == "__main__":
    import sys

    from reranker_kit.commands.common import run_cli

    if sys.argv[1:2] == ["serve"]:
        from reranker_kit.commands.serve import main as serve

        run_cli(lambda: serve(sys.argv[2:]))
    else:
        from reranker_kit.commands.export import main

        run_cli(main)
