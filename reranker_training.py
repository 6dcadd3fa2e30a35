"""The training pieces `fine_tune_reranker.py` assembles: datasets, collator, loss, dev evaluation, callbacks.

Two losses are offered. `bce` scores each (query, document) pair on its own against a 0/1 label.
`listwise` scores a query's positive together with its negatives and applies softmax cross-entropy
with the positive as the target, as FlagEmbedding trains its rerankers: the model only has to rank the
positive above its negatives, not reach absolute probabilities.
"""

import logging
import signal
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import Trainer, TrainerCallback

from data_loading import Query
from metrics import evaluate_rankings
from negatives import TrainingGroup
from pair_encoding import encode_pairs, pad_batch, score_pairs
from pipeline import choose_fusion_weight, fused_scores, rank, rerank_scores, retrieve_candidates
from retrieval import LexicalIndex

logger = logging.getLogger(__name__)

LOSSES = ("bce", "listwise")
RANKING_METRICS = ("hit", "mrr", "ndcg")
FUSION_WEIGHTS = tuple(step / 10 for step in range(11))
MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def build_train_dataset(groups: Sequence[TrainingGroup], corpus: dict[int, str], tokenizer, max_length: int,
                        loss: str) -> Dataset:
    """Pre-tokenized rows with a `length` column, so the Trainer can group batches by length.

    bce: one row per pair, labelled 1 (positive) or 0 (negative).
    listwise: one row per group; its members are the positive first, then the negatives.
    """
    members = [[(group.query, corpus[group.positive_id])] + [(group.query, corpus[doc_id]) for doc_id in group.negative_ids]
               for group in groups]
    flat_pairs = [pair for group_members in members for pair in group_members]
    encoded = encode_pairs(tokenizer, flat_pairs, max_length)
    keys = [key for key in MODEL_INPUT_KEYS if key in encoded[0]]
    if loss == "bce":
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
    """Pads each batch to its longest pair; listwise rows are flattened with their group sizes kept."""

    def __init__(self, tokenizer, loss: str):
        self.tokenizer = tokenizer
        self.loss = loss

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        keys = [key for key in MODEL_INPUT_KEYS if key in rows[0]]
        if self.loss == "bce":
            batch = pad_batch(self.tokenizer, [{key: row[key] for key in keys} for row in rows])
            batch["labels"] = torch.tensor([row["labels"] for row in rows], dtype=torch.float32)
            return batch
        members = [{key: row[key][position] for key in keys} for row in rows for position in range(len(row["input_ids"]))]
        batch = pad_batch(self.tokenizer, members)
        batch["group_sizes"] = torch.tensor([len(row["input_ids"]) for row in rows], dtype=torch.long)
        return batch


def reranker_loss(logits: torch.Tensor, inputs: dict[str, torch.Tensor], loss: str) -> torch.Tensor:
    """BCE on single logits or softmax cross-entropy over each group; always on fp32 logits."""
    logits = logits.view(-1).float()
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, inputs["labels"].float())
    group_losses = [-torch.log_softmax(group, dim=0)[0] for group in torch.split(logits, inputs["group_sizes"].tolist())]
    return torch.stack(group_losses).mean()


class RerankerTrainer(Trainer):
    """A Trainer with the reranker loss and an `evaluate` that reranks the dev queries."""

    def __init__(self, *args, loss: str, dev_evaluator=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_name = loss
        self.dev_evaluator = dev_evaluator

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # num_items_in_batch: passed by transformers >= 4.46; each micro-batch loss is already a mean.
        model_inputs = {key: value for key, value in inputs.items() if key in MODEL_INPUT_KEYS}
        outputs = model(**model_inputs)
        loss = reranker_loss(outputs.logits, inputs, self.loss_name)
        return (loss, outputs) if return_outputs else loss

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        if self.dev_evaluator is None:
            return {}
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in self.dev_evaluator(self.model).items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class DevEvaluator:
    """Pair metrics and ranking metrics of a model on the held-out dev queries.

    Ranking: each dev query's candidates are the first stage's top `top_n` documents, reranked by the
    model, exactly as `main.py` will use it; a relevant document the first stage missed counts as missed.
    Pair metrics (the seed guide's): accuracy at 0.5 after a sigmoid, mean sigmoid score of positive and
    of negative pairs, and their difference (margin), over the dev queries' mined pairs.
    """

    def __init__(self, dev_queries: Sequence[Query], dev_groups: Sequence[TrainingGroup], corpus: dict[int, str],
                 index: LexicalIndex, doc_ids: Sequence[int], tokenizer, max_length: int, batch_size: int,
                 top_n: int, ks: Sequence[int] = (3, 5, 7)):
        self.queries, self.corpus = list(dev_queries), corpus
        self.tokenizer, self.max_length, self.batch_size, self.ks = tokenizer, max_length, batch_size, tuple(ks)
        self.relevant = {query.qid: query.relevant_ids for query in dev_queries}
        self.candidates = retrieve_candidates(index, doc_ids, dev_queries, top_n)
        self.labelled_pairs, labels = [], []
        for group in dev_groups:
            self.labelled_pairs += [(group.query, corpus[doc_id]) for doc_id in (group.positive_id, *group.negative_ids)]
            labels += [1.0] + [0.0] * len(group.negative_ids)
        self.labels = np.asarray(labels)

    def ranking_metrics(self, scores_by_query: dict[str, np.ndarray]) -> dict[str, float]:
        return evaluate_rankings(rank(scores_by_query, self.candidates), self.relevant, self.ks, metrics=RANKING_METRICS)

    def first_stage_metrics(self) -> dict[str, float]:
        return self.ranking_metrics(self.candidates.first_stage_scores)

    def candidate_scores(self, model) -> dict[str, np.ndarray]:
        """The model's score of each dev query's candidates, in candidate order."""
        return rerank_scores(self._scorer(model), self.queries, self.candidates, self.corpus)

    def __call__(self, model) -> dict[str, float]:
        return self._metrics(model, self.candidate_scores(model))

    def evaluate_with_fusion(self, model, metric: str) -> tuple[dict[str, float], dict]:
        """The final metrics and the fusion weight chosen on dev, from one scoring of the candidates.

        The weight (0 = first stage only, 1 = reranker only) follows `pipeline.choose_fusion_weight`: the
        best `metric` among weights no worse than the first stage.
        """
        reranker = self.candidate_scores(model)
        by_weight = {f"{weight:.1f}": self.ranking_metrics(fused_scores(self.candidates, reranker, weight))
                     for weight in FUSION_WEIGHTS}
        best = choose_fusion_weight(by_weight, metric, self.ks)
        fusion = {"weight": float(best), "metric": metric, "fused_dev_metrics": by_weight[best],
                  "dev_metrics_by_weight": by_weight}
        return self._metrics(model, reranker), fusion

    def _metrics(self, model, candidate_scores: dict[str, np.ndarray]) -> dict[str, float]:
        probabilities = 1.0 / (1.0 + np.exp(-self._scorer(model)(self.labelled_pairs)))
        positive, negative = probabilities[self.labels == 1.0], probabilities[self.labels == 0.0]
        metrics = {
            "accuracy": float(np.mean((probabilities >= 0.5) == (self.labels == 1.0))),
            "avg_pos_score": float(positive.mean()) if positive.size else 0.0,
            "avg_neg_score": float(negative.mean()) if negative.size else 0.0,
        }
        metrics["margin"] = metrics["avg_pos_score"] - metrics["avg_neg_score"]
        metrics.update(self.ranking_metrics(candidate_scores))
        return metrics

    def _scorer(self, model):
        return lambda pairs: score_pairs(model, self.tokenizer, pairs, self.max_length, self.batch_size)


class EvaluateAtEndCallback(TrainerCallback):
    """Evaluates and saves at the last step too, so the final weights compete for best checkpoint."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and args.eval_strategy != "no":
            control.should_evaluate = True
            control.should_save = True
        return control


class GracefulInterruptCallback(TrainerCallback):
    """The first Ctrl-C (SIGINT) or SIGTERM saves a checkpoint at the end of the current step and stops.

    A second Ctrl-C interrupts at once, as usual.
    """

    def __init__(self):
        self.interrupted = False
        self._previous_handlers = {}

    def on_train_begin(self, args, state, control, **kwargs):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._request_stop)

    def on_train_end(self, args, state, control, **kwargs):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)

    def _request_stop(self, signum, frame):
        if self.interrupted and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logger.warning("%s received: saving a checkpoint after this step, then stopping "
                       "(press Ctrl-C again to abort without saving)", signal.Signals(signum).name)
        self.interrupted = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True
        return control
