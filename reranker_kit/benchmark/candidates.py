"""main.py's first stage: the candidates of every evaluated file, and what the report says produced them.

Three sources: the kit's own index (`--retriever`), that index over expanded documents
(`--expand_documents`), or the user's ranked lists (`--candidates`).
"""

import logging
from pathlib import Path

from reranker_kit.basics.errors import KitError
from reranker_kit.benchmark.encoders import EncoderChoice
from reranker_kit.benchmark.settings import BenchmarkSettings
from reranker_kit.data.loading import Query, load_queries
from reranker_kit.retrieval import FirstStage
from reranker_kit.retrieval.candidates import Candidates, retrieve_candidates
from reranker_kit.retrieval.candidates_file import candidates_from_file, read_candidates_file
from reranker_kit.retrieval.expansion import expanded_documents, queries_outside
from reranker_kit.run_folder import training_file

logger = logging.getLogger("main")


def first_stage_candidates(settings: BenchmarkSettings, corpus: dict[int, str], datasets: dict[str, list[Query]],
                           fine_tuned_path: Path | None, encoder: EncoderChoice | None = None
                           ) -> tuple[dict[str, Candidates], dict]:
    """({file name: candidates}, the report's description of the first stage); `encoder` for dense and hybrid."""
    if settings.candidates:
        lists = read_candidates_file(settings.candidates, corpus)
        logger.info("first stage: %d ranked lists from %s", len(lists), settings.candidates)
        return (candidates_from_file(lists, datasets, settings.candidates, settings.top_n),
                {"method": "candidates_file", "candidates_file": str(Path(settings.candidates).resolve())})
    first_stage = FirstStage(settings.retriever, encoder.model if encoder else settings.embedding_model,
                             settings.embedding_cache_dir, encoder.dense_weight if encoder else None)
    described = first_stage.describe()
    doc_ids = list(corpus)
    if not settings.expand_documents:
        index = first_stage.index([corpus[doc_id] for doc_id in doc_ids])
        return {name: retrieve_candidates(index, doc_ids, queries, settings.top_n)
                for name, queries in datasets.items()}, described
    source = expansion_file(settings, fine_tuned_path)
    expansion = load_queries(source, corpus, settings.sheet)
    candidates, used = {}, {}
    for name, queries in datasets.items():
        # Never a query that is evaluated: each file gets an index expanded with the others' queries only.
        kept = queries_outside(expansion, queries)
        used[name] = len(kept)
        documents = expanded_documents(corpus, kept)
        candidates[name] = retrieve_candidates(first_stage.index([documents[doc_id] for doc_id in doc_ids]), doc_ids,
                                               queries, settings.top_n)
        logger.info("%s: documents expanded with %d of the %d queries of %s (the rest are evaluated here)", name,
                    len(kept), len(expansion), source)
    described["expanded_with"] = {"file": str(Path(source).resolve()), "queries_per_evaluated_file": used}
    return candidates, described


def expansion_file(settings: BenchmarkSettings, fine_tuned_path: Path | None) -> Path:
    """--expansion_xlsx, else the query file the fine-tuned run trained on (from its training_info.json)."""
    if settings.expansion_xlsx:
        return Path(settings.expansion_xlsx)
    source = training_file(fine_tuned_path) if fine_tuned_path and fine_tuned_path.is_dir() else None
    if source is None:
        raise KitError("`expand_documents` needs labelled training queries: a fine-tuned run whose training file is "
                       "still on disk (`reranker`), or `expansion_xlsx` FILE")
    return source
