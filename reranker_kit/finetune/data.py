"""The data both jobs prepare the same way: the corpus and the labelled queries (validated, repeated queries
merged), the check that every query has a negative, the dev split, and the extra training queries."""

from dataclasses import dataclass

from reranker_kit.basics.errors import DataError
from reranker_kit.data.augmentation import answers_as_queries, passages_as_queries
from reranker_kit.data.loading import Query, load_corpus, load_queries
from reranker_kit.data.splits import merge_duplicate_queries
from reranker_kit.finetune.settings import DataSettings


@dataclass(frozen=True)
class LabelledData:
    """The corpus ({document id: text}) and the labelled queries, each asked once."""

    corpus: dict[int, str]
    queries: list[Query]


@dataclass(frozen=True)
class TrainingQueries:
    """The training side: its labelled queries, then their answers and corpus sentences as extra queries."""

    labelled: list[Query]
    answers: list[Query]
    sentences: list[Query]

    @property
    def all(self) -> list[Query]:
        return self.labelled + self.answers + self.sentences


def load_labelled_data(data: DataSettings) -> LabelledData:
    """The files, validated before anything is written; a query with nothing to learn from is refused."""
    corpus = load_corpus(data.corpus_csv)
    queries = merge_duplicate_queries(load_queries(data.train_xlsx, corpus, data.sheet))
    require_negatives(corpus, queries, data.corpus_csv)
    return LabelledData(corpus, queries)


def require_negatives(corpus: dict[int, str], queries: list[Query], corpus_csv: str) -> None:
    """Every query needs a document that is not relevant to it, or it trains on positives alone."""
    widest = max(queries, key=lambda query: len(query.relevant_ids))
    if len(corpus) <= len(widest.relevant_ids):
        raise DataError(f"{corpus_csv}: {len(corpus)} document(s) leave no negative for {widest.source} row "
                        f"{widest.row}, which marks {len(widest.relevant_ids)} relevant; training learns from "
                        f"relevant and non-relevant pairs, so the corpus needs at least {len(widest.relevant_ids) + 1} "
                        "documents (a real one has about 100).")


def training_queries(train_queries: list[Query], corpus: dict[int, str], data: DataSettings) -> TrainingQueries:
    """The labelled training queries with the extra queries the settings ask for.

    The corpus belongs to no split: its sentences may join the training side of every split and fold.
    """
    answers = answers_as_queries(train_queries) if data.augment_with_answers else []
    return TrainingQueries(train_queries, answers, passages_as_queries(corpus, data.pseudo_queries_per_document))
