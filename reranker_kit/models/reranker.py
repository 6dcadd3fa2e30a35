"""The reranker API: score (query, passage) pairs with a cross-encoder and sort passages by relevance.

`rerank.py` at the repository root re-exports `Reranker`, so `from rerank import Reranker` works there.

Example:
    >>> from rerank import Reranker
    >>> reranker = Reranker(model_name="outputs/reranker-finetuned-20261127-101500")
    >>> scores, ranked_passages = reranker("CLB tuyển thành viên khi nào ạ?", passages)
"""

import logging
import numbers
import os
import threading
from collections.abc import Iterable

import torch

from reranker_kit.basics.errors import ModelLoadError
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.basics.scores import sigmoid
from reranker_kit.models.loading import UNTRAINED_HEAD_SEED, embedding_model_problem, load_cross_encoder_with_info
from reranker_kit.models.onnx_export import load_onnx_model
from reranker_kit.models.pair_encoding import check_max_length, position_limit, score_pairs, score_with
from reranker_kit.models.weight_ensembling import head_was_trained

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

    Every argument's type is checked here (a TypeError names it), before anything loads. A folder that
    fine_tune_embedder.py wrote is refused (ModelLoadError): it is an embedding model, not a reranker.

    Attributes:
        head_is_trained: whether the model's ranking head came from its checkpoint. False for a base without
            one (the bundled MiniLM, any plain encoder): it got a fresh one-logit head, and its scores mean
            nothing until it is fine-tuned (one warning says so when it loads).
        head_seed: the seed that fresh head was drawn from (`models.loading.UNTRAINED_HEAD_SEED`, the same in
            every process, so a given base always scores the same); None when the head is trained.
    """

    def __init__(self, model_name: str = "namdp-ptit/ViRanker", device: str | None = None,
                 use_fp16: bool | None = None, max_length: int = 512, batch_size: int = 32,
                 normalize: bool = False, show_progress_bar: bool = False, backend: str = "torch"):
        # Every argument is checked before anything loads: a wrong type would otherwise fail much later,
        # inside the tokenizer or a batch loop, with a message that names none of them.
        model_name = _checked_model_name(model_name)
        device = _checked_device(device)
        use_fp16 = _checked_flag("use_fp16", use_fp16, allow_none=True)
        max_length = _checked_whole_number("max_length", max_length)
        batch_size = _checked_whole_number("batch_size", batch_size)
        normalize = _checked_flag("normalize", normalize)
        show_progress_bar = _checked_flag("show_progress_bar", show_progress_bar)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        problem = embedding_model_problem(resolve_model_name(model_name))
        if problem:
            raise ModelLoadError(problem)
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
        self.model, self.tokenizer, self.model_path, loading_info = load_cross_encoder_with_info(
            model_name, head_seed=UNTRAINED_HEAD_SEED)
        self.head_is_trained = head_was_trained(loading_info)
        self.head_seed = None if self.head_is_trained else UNTRAINED_HEAD_SEED
        if not self.head_is_trained:
            logger.warning("%s has no trained ranking head: transformers initialised %s (from seed %d, so the scores "
                           "repeat on every load), and its scores mean nothing until it is fine-tuned "
                           "(python fine_tune_reranker.py --base_model %s)", model_name,
                           ", ".join(loading_info.get("missing_keys") or loading_info.get("mismatched_keys") or []),
                           UNTRAINED_HEAD_SEED, model_name)
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
        # An export is made from a fine-tuned run (`rerank.py export`), and its head is fixed in the file.
        self.head_is_trained, self.head_seed = True, None

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


def _checked_model_name(model_name) -> str:
    if isinstance(model_name, os.PathLike):
        return os.fspath(model_name)
    if not isinstance(model_name, str) or not model_name:
        raise TypeError(f"model_name must be a model folder (a str or a Path), a Hub id or 'bundled-minilm', got "
                        f"{model_name!r} ({type(model_name).__name__})")
    return model_name


def _checked_device(device):
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0' (or a torch.device, or None for the "
                        f"first GPU if any), got {device!r} ({type(device).__name__})")
    return device


def _checked_whole_number(name: str, value) -> int:
    # numbers.Integral takes numpy's integers too; bool is an int to Python but never meant as a size.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number (an int), got {value!r} ({type(value).__name__})")
    return int(value)


def _checked_flag(name: str, value, allow_none: bool = False) -> bool | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        wanted = "True, False or None" if allow_none else "True or False"
        raise TypeError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__})")
    return value
