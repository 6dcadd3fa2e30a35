"""The reranker API: score (query, passage) pairs with a cross-encoder and sort passages by relevance.

`rerank.py` at the repository root re-exports `Reranker`, so `from rerank import Reranker` works there.

Example:
    >>> from rerank import Reranker
    >>> reranker = Reranker(model_name="outputs/reranker-finetuned-20261127-101500")
    >>> scores, ranked_passages = reranker("CLB tuyển thành viên khi nào ạ?", passages)
"""

import logging
import threading
from collections.abc import Iterable

import torch

from reranker_kit.basics.scores import sigmoid
from reranker_kit.models.loading import load_cross_encoder
from reranker_kit.models.onnx_export import load_onnx_model
from reranker_kit.models.pair_encoding import check_max_length, position_limit, score_pairs, score_with

__all__ = ["Reranker"]

BACKENDS = ("torch", "onnx", "onnx_int8")

logger = logging.getLogger(__name__)


class Reranker:
    """A cross-encoder reranker whose scores match FlagEmbedding's `FlagReranker` for the same model.

    One instance may be called from several threads (a web server's workers, a thread pool): a lock lets
    one call at a time tokenise and score, because a fast tokenizer is not safe to use concurrently (it
    fails with "Already borrowed"). Calls from several threads therefore run one after another; for
    parallel scoring, give each worker its own instance.

    Args:
        model_name: a saved model folder (a fine-tuned run), a Hugging Face Hub id, or a bundled model
            (`bundled-e5`, `bundled-minilm`).
        device: "cuda", "cuda:1", "cpu"...; the first GPU when one is present, else the CPU.
        use_fp16: half precision for inference; defaults to True on a GPU and is always off on the CPU.
        max_length: token budget of a pair; capped at what the model's position embeddings allow. At least
            the tokenizer's special tokens plus 4 tokens of query and 4 of passage (11 for a BERT model, 12
            for XLM-RoBERTa): below that no pair fits without cutting into the special tokens.
        batch_size: pairs per forward pass.
        normalize: return sigmoid probabilities instead of raw logits.
        show_progress_bar: a tqdm bar on stderr while scoring (the CLIs turn it on).
        backend: "torch"; "onnx" or "onnx_int8" for the CPU export that `python rerank.py export RUN --onnx
            [--int8]` wrote into the run's onnx/ folder (ONNX Runtime, same encoding, same scores for fp32).
    """

    def __init__(self, model_name: str = "namdp-ptit/ViRanker", device: str | None = None,
                 use_fp16: bool | None = None, max_length: int = 512, batch_size: int = 32,
                 normalize: bool = False, show_progress_bar: bool = False, backend: str = "torch"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() and backend == "torch" else "cpu"))
        if backend == "torch":
            self._load_torch(model_name, use_fp16)
        else:
            self._load_onnx(model_name, use_fp16)
        self.max_length = min(max_length, position_limit(self.model.config))
        check_max_length(self.tokenizer, self.max_length)
        self._lock = threading.Lock()  # One call at a time through the tokenizer and the model.
        self.batch_size = batch_size
        self.normalize = normalize
        self.show_progress_bar = show_progress_bar

    def _load_torch(self, model_name: str, use_fp16: bool | None) -> None:
        on_gpu = self.device.type == "cuda"
        if use_fp16 and not on_gpu:
            logger.warning("use_fp16 needs a GPU; scoring in full precision on %s", self.device)
        self.use_fp16 = on_gpu if use_fp16 is None else bool(use_fp16) and on_gpu
        self.model, self.tokenizer, self.model_path = load_cross_encoder(model_name)
        if self.use_fp16:
            self.model.half()
        self.model.to(self.device).eval()

    def _load_onnx(self, model_name: str, use_fp16: bool | None) -> None:
        if self.device.type != "cpu":
            raise ValueError(f"backend {self.backend!r} runs on the CPU (ONNX Runtime's CPU provider); pass "
                             "device='cpu', or backend='torch' for a GPU")
        if use_fp16:
            logger.warning("use_fp16 applies to the torch backend; %s scores in its own precision", self.backend)
        self.use_fp16 = False
        self.model, self.tokenizer, self.model_path = load_onnx_model(model_name, int8=self.backend == "onnx_int8")

    def compute_score(self, pairs: Iterable[tuple[str, str]], normalize: bool | None = None) -> list[float]:
        """Scores (query, passage) pairs, in the order given.

        Args:
            pairs: (query, passage) tuples: a list, or any iterable such as a generator. All are checked
                before any is scored.
            normalize: sigmoid probabilities instead of logits; defaults to the constructor's choice.

        Returns:
            One float per pair.
        """
        pairs = _checked_pairs(pairs)
        with self._lock:
            if self.backend == "torch":
                scores = score_pairs(self.model, self.tokenizer, pairs, self.max_length, self.batch_size,
                                     self.show_progress_bar, description="reranking")
            else:
                scores = score_with(self.model.logits, self.tokenizer, pairs, self.max_length, self.batch_size,
                                    self.show_progress_bar, description="reranking")
        if self.normalize if normalize is None else normalize:
            scores = sigmoid(scores)
        return scores.tolist()

    def __call__(self, query: str, passages: Iterable[str], normalize: bool | None = None
                 ) -> tuple[list[float], list[str]]:
        """Reranks passages for one query.

        Args:
            query: the query text.
            passages: the passages' texts: a list, or any iterable of strings (not one bare string).

        Returns:
            (scores, ranked_passages), both best first; ties keep the input order.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        passages = _checked_texts(passages)
        scores = self.compute_score([(query, passage) for passage in passages], normalize=normalize)
        order = sorted(range(len(scores)), key=lambda position: -scores[position])
        return [scores[i] for i in order], [passages[i] for i in order]


def _checked_texts(passages) -> list[str]:
    """The passages as a list, every one a string; a bare string would be scored character by character."""
    if isinstance(passages, str):
        raise TypeError("passages must be a list of strings, got one string; to score a single passage pass "
                        "[passage]")
    if not isinstance(passages, Iterable):
        raise TypeError(f"passages must be a list (or any iterable) of strings, got {type(passages).__name__}")
    passages = list(passages)
    for position, passage in enumerate(passages):
        if not isinstance(passage, str):
            raise TypeError(f"passages[{position}] must be a string, got {type(passage).__name__}")
    return passages


def _checked_pairs(pairs) -> list[tuple[str, str]]:
    """The pairs as a list of (query, passage) tuples, all checked before anything is scored."""
    if isinstance(pairs, str) or not isinstance(pairs, Iterable):
        raise TypeError("compute_score takes a list (or any iterable) of (query, passage) pairs, got "
                        f"{type(pairs).__name__}")
    if isinstance(pairs, tuple) and len(pairs) == 2 and isinstance(pairs[0], str):
        raise TypeError("compute_score takes a list of (query, passage) pairs; wrap a single pair in a list")
    checked = []
    for position, pair in enumerate(pairs):
        if isinstance(pair, str) or not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(
                isinstance(text, str) for text in pair):
            raise TypeError(f"pairs[{position}] must be a (query: str, passage: str) pair, got {pair!r}")
        checked.append((pair[0], pair[1]))
    return checked
