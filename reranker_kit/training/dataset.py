"""Training rows and batches: pre-tokenized pairs (or groups) with a length column, padded per batch."""

from collections.abc import Sequence

import torch
from datasets import Dataset

from reranker_kit.finetune.negatives import TrainingGroup
from reranker_kit.models.pair_encoding import encode_pairs, pad_batch

MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def build_train_dataset(groups: Sequence[TrainingGroup], corpus: dict[int, str], tokenizer, max_length: int,
                        rows_are_groups: bool) -> Dataset:
    """Pre-tokenized rows with a `length` column, so the Trainer can group batches by length.

    Pairwise losses: one row per pair, labelled 1 (positive) or 0 (negative). Losses over groups
    (`rows_are_groups`, from the loss object): one row per group, the positive first, then the negatives.
    """
    members = [[(group.query, corpus[group.positive_id])] + [(group.query, corpus[doc_id]) for doc_id in group.negative_ids]
               for group in groups]
    flat_pairs = [pair for group_members in members for pair in group_members]
    encoded = encode_pairs(tokenizer, flat_pairs, max_length)
    keys = [key for key in MODEL_INPUT_KEYS if key in encoded[0]]
    if not rows_are_groups:
        labels = [float(position == 0) for group_members in members for position in range(len(group_members))]
        columns = {key: [item[key] for item in encoded] for key in keys}
        columns["labels"] = labels
        columns["length"] = [len(item["input_ids"]) for item in encoded]
        return Dataset.from_dict(columns)
    columns = {key: [] for key in keys}
    columns["length"] = []
    start = 0
    for group_members in members:
        group_encoded = encoded[start:start + len(group_members)]
        start += len(group_members)
        for key in keys:
            columns[key].append([item[key] for item in group_encoded])
        # A group's batch cost is set by its longest member.
        columns["length"].append(max(len(item["input_ids"]) for item in group_encoded))
    return Dataset.from_dict(columns)


class CrossEncoderCollator:
    """Pads each batch to its longest pair; group rows are flattened with their group sizes kept."""

    def __init__(self, tokenizer, rows_are_groups: bool):
        self.tokenizer = tokenizer
        self.rows_are_groups = rows_are_groups

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        keys = [key for key in MODEL_INPUT_KEYS if key in rows[0]]
        if not self.rows_are_groups:
            batch = pad_batch(self.tokenizer, [{key: row[key] for key in keys} for row in rows])
            batch["labels"] = torch.tensor([row["labels"] for row in rows], dtype=torch.float32)
            return batch
        members = [{key: row[key][position] for key in keys} for row in rows for position in range(len(row["input_ids"]))]
        batch = pad_batch(self.tokenizer, members)
        batch["group_sizes"] = torch.tensor([len(row["input_ids"]) for row in rows], dtype=torch.long)
        return batch
