"""Turning (query, passage) pairs into model inputs the same way for training and for scoring.

The encoding copies FlagEmbedding's reranker: the query is cut to 3/4 of the length budget, then the
pair is joined and only the passage is truncated. Training on exactly what inference sees, and scoring
exactly as `FlagReranker` does, keeps fine-tuned scores comparable between the two. Unlike FlagEmbedding,
a very small budget (under about 30 tokens) cuts the query further, so the passage keeps a few tokens
and the pair never runs over.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

QUERY_SHARE_OF_MAX_LENGTH = 0.75
# The least of each text a pair keeps: below this a pair is the special tokens and a word or two.
MIN_QUERY_TOKENS = 4
MIN_PASSAGE_TOKENS = 4


def minimum_max_length(tokenizer) -> int:
    """The smallest budget a pair can be encoded in: the special tokens and a few tokens of each text."""
    return tokenizer.num_special_tokens_to_add(pair=True) + MIN_QUERY_TOKENS + MIN_PASSAGE_TOKENS


def check_max_length(tokenizer, max_length: int) -> None:
    """Raises ValueError for a budget too small to hold the special tokens and some of query and passage."""
    minimum = minimum_max_length(tokenizer)
    if max_length < minimum:
        raise ValueError(
            f"max_length {max_length} is too small: a pair needs at least {minimum} tokens "
            f"({tokenizer.num_special_tokens_to_add(pair=True)} special tokens of this tokenizer, and "
            f"{MIN_QUERY_TOKENS} of the query and {MIN_PASSAGE_TOKENS} of the passage); 512 is usual")


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_length: int) -> list[dict[str, list[int]]]:
    """Token ids of each pair, unpadded, at most `max_length` tokens each (special tokens included).

    The query keeps at most 3/4 of the budget and always leaves room for the special tokens and
    MIN_PASSAGE_TOKENS of the passage, so cutting only the passage always fits.
    """
    if not pairs:
        return []
    check_max_length(tokenizer, max_length)
    _silence_pad_advice(tokenizer)
    query_budget = min(int(max_length * QUERY_SHARE_OF_MAX_LENGTH),
                       max_length - tokenizer.num_special_tokens_to_add(pair=True) - MIN_PASSAGE_TOKENS)
    queries = tokenizer([query for query, _ in pairs], add_special_tokens=False, truncation=True,
                        max_length=query_budget)["input_ids"]
    passages = tokenizer([passage for _, passage in pairs], add_special_tokens=False, truncation=True,
                         max_length=max_length)["input_ids"]
    return [
        dict(tokenizer.prepare_for_model(query_ids, passage_ids, truncation="only_second",
                                         max_length=max_length, padding=False))
        for query_ids, passage_ids in zip(queries, passages)
    ]


def pad_batch(tokenizer, encoded: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Pads a batch to its longest member (never to max_length) and returns tensors."""
    _silence_pad_advice(tokenizer)
    features = {key: [item[key] for item in encoded] for key in encoded[0] if key != "labels"}
    batch = tokenizer.pad(features, padding=True, return_tensors="pt")
    return dict(batch)


def score_pairs(model, tokenizer, pairs: Sequence[tuple[str, str]], max_length: int, batch_size: int,
                show_progress_bar: bool = False, description: str = "scoring pairs") -> np.ndarray:
    """One-logit scores of the pairs, in the order given, without gradients (a torch model)."""
    device = next(model.parameters()).device

    def forward(batch: dict[str, torch.Tensor]) -> np.ndarray:
        return model(**{key: value.to(device) for key, value in batch.items()}).logits.view(-1).float().cpu().numpy()

    was_training = model.training
    model.eval()
    with torch.inference_mode():
        scores = score_with(forward, tokenizer, pairs, max_length, batch_size, show_progress_bar, description)
    model.train(was_training)
    return scores


def score_with(forward: Callable[[dict[str, torch.Tensor]], np.ndarray], tokenizer, pairs: Sequence[tuple[str, str]],
               max_length: int, batch_size: int, show_progress_bar: bool = False, description: str = "scoring pairs"
               ) -> np.ndarray:
    """Scores pairs with any backend's `forward` (padded batch -> logits): torch and ONNX encode alike.

    Pairs are sorted by length so each batch is padded only to its longest pair, which wastes far
    less compute than padding everything to max_length. The optional bar counts pairs on stderr.
    """
    if not pairs:
        return np.empty(0, dtype=np.float32)
    encoded = encode_pairs(tokenizer, pairs, max_length)
    longest_first = np.argsort([-len(item["input_ids"]) for item in encoded], kind="stable")
    scores = np.empty(len(pairs), dtype=np.float32)
    with tqdm(total=len(pairs), desc=description, unit="pair", disable=not show_progress_bar, leave=False,
              dynamic_ncols=True) as bar:
        for start in range(0, len(pairs), batch_size):
            batch_positions = longest_first[start:start + batch_size]
            scores[batch_positions] = forward(pad_batch(tokenizer, [encoded[i] for i in batch_positions]))
            bar.update(len(batch_positions))
    return scores




def _silence_pad_advice(tokenizer) -> None:
    # prepare_for_model and pad on pre-tokenized ids are the point here, not a slow path: the fast
    # tokenizer's advice to call it on raw text instead does not apply.
    tokenizer.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True


def position_limit(config) -> int:
    """The longest input the model's position embeddings allow.

    RoBERTa-family models reserve the first positions (padding index + 1), so XLM-RoBERTa's 514
    positions hold 512 tokens.
    """
    offset = config.pad_token_id + 1 if config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
    return config.max_position_embeddings - offset
