"""A training run's first stage: one index over the corpus that mines the hard negatives and picks the dev
candidates, as `hard_neg_method`, `expand_documents` and `candidates` ask; the same for both jobs.

The index lives only while mining: a dense encoder's memory is free again before the reranker loads.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from reranker_kit.basics.errors import DataError, KitError
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.data.loading import Query, same_text_groups
from reranker_kit.finetune.false_negatives import TeacherJudge
from reranker_kit.finetune.negatives import MiningReport, TrainingGroup, effective_hard_top_k, mine_training_groups
from reranker_kit.finetune.settings import JobSettings, NegativeSettings
from reranker_kit.retrieval import FirstStage
from reranker_kit.retrieval.candidates import Candidates, retrieve_candidates
from reranker_kit.retrieval.candidates_file import RankedListRetriever, read_candidates_file
from reranker_kit.retrieval.expansion import expanded_documents
from reranker_kit.retrieval.first_stage import EMBEDDING_METHODS
from reranker_kit.run_folder import stored_hybrid_weight

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MinedData:
    """The mined groups of both sides, what mining reports, and the dev queries' first-stage candidates."""

    train_groups: list[TrainingGroup]
    train_report: MiningReport
    dev_groups: list[TrainingGroup]
    dev_report: MiningReport
    dev_candidates: Candidates | None  # None without dev queries.
    dev_from_file: bool = False  # Whether any dev query's candidates came from --candidates.


@dataclass(frozen=True)
class MiningSettings:
    """What mining reads: the negatives group, and the few settings of other groups it needs."""

    negatives: NegativeSettings
    seed: int
    dev_top_n: int
    train_xlsx: str  # Named in messages.
    base_model: str  # The false-negative teacher when `teacher_model` is not given.
    max_seq_length: int  # The teacher's token budget.
    eval_batch_size: int

    @classmethod
    def of(cls, settings: JobSettings) -> "MiningSettings":
        """From either job's settings: both name their groups and these fields alike."""
        return cls(negatives=settings.negatives, seed=settings.optimisation.seed,
                   dev_top_n=settings.evaluation.dev_top_n, train_xlsx=settings.data.train_xlsx,
                   base_model=settings.model.base_model, max_seq_length=settings.model.max_seq_length,
                   eval_batch_size=settings.evaluation.eval_batch_size)


def mine(settings: MiningSettings, corpus: dict[int, str], labelled_train_queries: list[Query],
         train_queries: list[Query], dev_queries: list[Query]) -> MinedData:
    """Builds the index, then mines both sides and retrieves the dev candidates, each in one batch.

    Documents are expanded (`expand_documents`) with the labelled training queries only: never a dev
    query, so the dev metrics stay honest, and never an augmented one.
    """
    negatives, seed = settings.negatives, settings.seed
    doc_ids = list(corpus)
    documents = corpus
    if negatives.expand_documents:
        documents = expanded_documents(corpus, labelled_train_queries)
        logger.info("documents expanded with the %d labelled training queries and their answers",
                    len(labelled_train_queries))
    # An embedder run (fine_tune_embedder.py) as `embedding_model` brings the hybrid weight it chose.
    model = negatives.embedding_model
    dense_weight = stored_hybrid_weight(model) if Path(model).is_dir() else None
    first_stage = FirstStage(negatives.hard_neg_method, model, negatives.embedding_cache_dir, dense_weight)
    index = first_stage.index([documents[doc_id] for doc_id in doc_ids])
    dev_from_file = False
    if negatives.candidates:
        index = ranked_lists(negatives, settings.train_xlsx, corpus, index, labelled_train_queries, dev_queries)
        dev_from_file = index.covers(dev_queries) > 0
    mining = (index, doc_ids, negatives.num_hard_negatives, negatives.num_random_negatives,
              effective_hard_top_k(negatives.hard_neg_top_k, len(doc_ids)))
    same_text = same_text_groups(corpus)  # load_corpus warned about them; a copy is never its twin's negative.
    judge = teacher_judge(settings, corpus) if negatives.filter_false_negatives else None
    train_groups, train_report = mine_training_groups(train_queries, *mining, seed, same_text, judge)
    if judge is not None:
        check_false_negative_share(settings, train_report)
    dev_groups, dev_report = mine_training_groups(dev_queries, *mining, seed + 1, same_text)
    top_n = settings.dev_top_n
    dev_candidates = retrieve_candidates(index, doc_ids, dev_queries, top_n) if dev_queries else None
    return MinedData(train_groups, train_report, dev_groups, dev_report, dev_candidates, dev_from_file)


def ranked_lists(negatives: NegativeSettings, train_xlsx: str, corpus: dict[int, str], fallback,
                 labelled_train_queries: list[Query], dev_queries: list[Query]) -> RankedListRetriever:
    """The `candidates` file as the index; the queries it lacks fall back to `hard_neg_method`."""
    retriever = RankedListRetriever(read_candidates_file(negatives.candidates, corpus), list(corpus), fallback)
    covered_train, covered_dev = retriever.covers(labelled_train_queries), retriever.covers(dev_queries)
    if covered_train + covered_dev == 0:
        raise DataError(f"{negatives.candidates}: no ranked list belongs to a query of {train_xlsx}. Give the lists "
                        "of the training queries (same text as in the file), or drop `candidates`.")
    logger.info("%s: ranked lists for %d of %d training and %d of %d dev queries; the others, and the augmented "
                "queries, use %s", negatives.candidates, covered_train, len(labelled_train_queries), covered_dev,
                len(dev_queries), negatives.hard_neg_method)
    return retriever


def require_ranking_teacher(teacher: str) -> None:
    """A teacher with a fresh head scores every pair about alike: it would drop nearly every hard negative."""
    from reranker_kit.models.weight_ensembling import has_trained_head  # Defers torch until a teacher is asked for.

    if not has_trained_head(teacher):
        raise KitError(f"`filter_false_negatives`: the teacher {teacher} has no trained ranking head (a fresh head "
                       "scores every pair about alike and would drop almost every hard negative). Give `teacher_model` "
                       "a reranker that already ranks, such as namdp-ptit/ViRanker or a finished run folder, or drop "
                       "`filter_false_negatives`")


def check_first_stage_inputs(settings: MiningSettings, corpus: dict[int, str]) -> None:
    """The embedding and teacher model names and the candidates file, checked before any folder is created."""
    negatives = settings.negatives
    if negatives.hard_neg_method in EMBEDDING_METHODS:
        resolve_model_name(negatives.embedding_model)
    if negatives.teacher_model:
        resolve_model_name(negatives.teacher_model)
    if negatives.filter_false_negatives:
        require_ranking_teacher(negatives.teacher_model or settings.base_model)
    if negatives.candidates:
        read_candidates_file(negatives.candidates, corpus)


def teacher_judge(settings: MiningSettings, corpus: dict[int, str]) -> TeacherJudge:
    """The judge mining asks before it takes a hard negative: the teacher's scores against the positive's."""
    from reranker_kit.models.reranker import Reranker  # Defers torch until a teacher is asked for.

    teacher_name = settings.negatives.teacher_model or settings.base_model
    teacher = Reranker(model_name=teacher_name, max_length=settings.max_seq_length, batch_size=settings.eval_batch_size)
    return TeacherJudge(corpus, teacher.compute_score, settings.negatives.false_negative_margin)


def check_false_negative_share(settings: MiningSettings, report: MiningReport) -> None:
    """A teacher that judges most hard candidates relevant cannot tell relevant from hard: refused, not trained on."""
    judged, dropped = report.candidates_judged, report.false_negatives_dropped
    share, teacher = settings.negatives.max_false_negative_share, settings.negatives.teacher_model or settings.base_model
    if judged and dropped > share * judged:
        raise KitError(f"`filter_false_negatives`: the teacher {teacher} judged {dropped} of {judged} hard candidates "
                       f"({dropped / judged:.0%}) likely relevant, more than `max_false_negative_share` {share:g}: it "
                       "cannot tell relevant documents from hard negatives. Use a stronger `teacher_model`, a smaller "
                       "`false_negative_margin`, or drop `filter_false_negatives`")
    logger.info("false-negative filter: %s judged %d of %d hard candidates within %.0f%% of their positive and "
                "passed over them; %d group(s) came up short of hard negatives", teacher, dropped, judged,
                100 * settings.negatives.false_negative_margin, len(report.shortfalls))
