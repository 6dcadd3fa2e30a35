"""A training run's first stage: one index over the corpus that mines the hard negatives and picks the dev
candidates, as `--hard_neg_method`, `--expand_documents` and `--candidates` ask.

The index lives only while mining: a dense encoder's memory is free again before the reranker loads.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from reranker_kit.data.loading import Query
from reranker_kit.errors import DataError
from reranker_kit.models.loading import resolve_model_name
from reranker_kit.pipeline import Candidates, retrieve_candidates
from reranker_kit.retrieval import FirstStage
from reranker_kit.retrieval.first_stage import EMBEDDING_METHODS
from reranker_kit.run_folder import stored_hybrid_weight
from reranker_kit.training.negatives import MiningReport, TrainingGroup, effective_hard_top_k, mine_training_groups

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MinedData:
    """The mined groups of both sides, what mining reports, and the dev queries' first-stage candidates."""

    train_groups: list[TrainingGroup]
    train_report: MiningReport
    dev_groups: list[TrainingGroup]
    dev_report: MiningReport
    dev_candidates: Candidates | None  # None without dev queries.


def mine(args, corpus: dict[int, str], labelled_train_queries: list[Query], train_queries: list[Query],
         dev_queries: list[Query]) -> MinedData:
    """Builds the index, then mines both sides and retrieves the dev candidates, each in one batch.

    Documents are expanded (`--expand_documents`) with the labelled training queries only: never a dev
    query, so the dev metrics stay honest, and never an augmented one.
    """
    doc_ids = list(corpus)
    documents = corpus
    if args.expand_documents:
        from reranker_kit.retrieval.expansion import expanded_documents

        documents = expanded_documents(corpus, labelled_train_queries)
        logger.info("documents expanded with the %d labelled training queries and their answers",
                    len(labelled_train_queries))
    # An embedder run (fine_tune_embedder.py) as --embedding_model brings the hybrid weight it chose.
    dense_weight = stored_hybrid_weight(args.embedding_model) if Path(args.embedding_model).is_dir() else None
    first_stage = FirstStage(args.hard_neg_method, args.embedding_model, args.embedding_cache_dir, dense_weight)
    index = first_stage.index([documents[doc_id] for doc_id in doc_ids])
    if args.candidates:
        index = ranked_lists(args, corpus, index, labelled_train_queries, dev_queries)
    mining = (index, doc_ids, args.num_hard_negatives, args.num_random_negatives,
              effective_hard_top_k(args.hard_neg_top_k, len(doc_ids)))
    train_groups, train_report = mine_training_groups(train_queries, *mining, args.seed)
    if args.filter_false_negatives:
        train_groups = drop_false_negatives(args, corpus, train_groups, train_report)
    dev_groups, dev_report = mine_training_groups(dev_queries, *mining, args.seed + 1)
    dev_candidates = retrieve_candidates(index, doc_ids, dev_queries, args.dev_top_n) if dev_queries else None
    return MinedData(train_groups, train_report, dev_groups, dev_report, dev_candidates)


def ranked_lists(args, corpus: dict[int, str], fallback, labelled_train_queries: list[Query], dev_queries: list[Query]):
    """The --candidates file as the index; the queries it lacks fall back to --hard_neg_method."""
    from reranker_kit.retrieval.candidates_file import RankedListRetriever, read_candidates_file

    retriever = RankedListRetriever(read_candidates_file(args.candidates, corpus), list(corpus), fallback)
    covered_train, covered_dev = retriever.covers(labelled_train_queries), retriever.covers(dev_queries)
    if covered_train + covered_dev == 0:
        raise DataError(f"{args.candidates}: no ranked list belongs to a query of {args.train_xlsx}. Give the lists of "
                        "the training queries (same text as in the file), or drop --candidates.")
    logger.info("%s: ranked lists for %d of %d training and %d of %d dev queries; the others, and the augmented "
                "queries, use %s", args.candidates, covered_train, len(labelled_train_queries), covered_dev,
                len(dev_queries), args.hard_neg_method)
    return retriever


def check_first_stage_inputs(args, corpus: dict[int, str]) -> None:
    """The embedding and teacher model names and the candidates file, checked before any folder is created."""
    if args.hard_neg_method in EMBEDDING_METHODS:
        resolve_model_name(args.embedding_model)
    if args.teacher_model:
        resolve_model_name(args.teacher_model)
    if args.candidates:
        from reranker_kit.retrieval.candidates_file import read_candidates_file

        read_candidates_file(args.candidates, corpus)


def drop_false_negatives(args, corpus: dict[int, str], groups: list[TrainingGroup], report: MiningReport
                         ) -> list[TrainingGroup]:
    """The groups without the hard negatives the teacher scores close to their positive; counted in `report`."""
    from reranker_kit.models.reranker import Reranker
    from reranker_kit.training.false_negatives import filter_false_negatives

    teacher_name = args.teacher_model or args.base_model
    teacher = Reranker(model_name=teacher_name, max_length=args.max_seq_length, batch_size=args.eval_batch_size)
    kept, dropped = filter_false_negatives(groups, corpus, teacher.compute_score, args.false_negative_margin)
    report.false_negatives_dropped = dropped
    report.hard_negative_pairs -= dropped
    logger.info("false-negative filter: %s dropped %d of %d hard negatives scored within %.0f%% of their positive",
                teacher_name, dropped, dropped + report.hard_negative_pairs, 100 * args.false_negative_margin)
    return kept
