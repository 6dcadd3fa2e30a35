"""The reranker API users import from the repository root.

    >>> from rerank import Reranker
    >>> reranker = Reranker(model_name="outputs/reranker-finetuned-20261127-101500")
    >>> scores, ranked_passages = reranker("CLB tuyển thành viên khi nào ạ?", passages)

The implementation lives in `reranker_kit.models.reranker`.
"""

from reranker_kit.models.reranker import Reranker

__all__ = ["Reranker"]
