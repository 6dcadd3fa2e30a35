"""An LLM-free judge of context recall: how much of the ground-truth answer the top-k contexts support.

The club judges context recall with an LLM. Without one, a sentence of the answer counts as supported
when at least SUPPORT_THRESHOLD of its distinct tokens occur in the top-k contexts. It is a lexical
proxy: compare it between rankers, not with the club's LLM-judged figures.
"""

import re
import unicodedata
from collections.abc import Sequence

from reranker_kit.metrics.conventions import check_k, dedupe

# At 0.5, common function words (của, là, và, được) already let shuffled candidates look supportive;
# bench/QUALITY.md records how 0.7 separates the ground truth from shuffled candidates.
SUPPORT_THRESHOLD: float = 0.7
# The club's answers are often lists or clauses, so ";" and line breaks end a sentence too.
_SENTENCE_SPLIT = re.compile(r"[.!?;\n]+")
# Unicode \w keeps one-character Vietnamese syllables ("ở", "ý") as tokens.
_TOKEN = re.compile(r"\w+")


def _tokenize(text: str) -> list[str]:
    # NFC first: \w splits decomposed letters from their combining marks.
    return _TOKEN.findall(unicodedata.normalize("NFC", text).lower())


def _answer_sentences(answer: str) -> list[set[str]]:
    """The distinct tokens of each sentence of the answer; sentences without a token are dropped."""
    return [tokens for tokens in (set(_tokenize(piece)) for piece in _SENTENCE_SPLIT.split(answer)) if tokens]


def answer_can_be_judged(answer: str) -> bool:
    """Whether the answer has a word to look for: an empty `Ground truth answer` leaves nothing to support.

    Such a query is left out of context recall (and counted), never scored 0: a 0 would read as "the
    contexts support none of it" and pull every ranker's mean down alike.
    """
    return bool(_answer_sentences(answer))


def context_recall_at_k(context_texts: Sequence[str], answer: str, k: int) -> float:
    """Share of the answer's sentences whose tokens are >= SUPPORT_THRESHOLD covered by the top-k contexts.

    Sentences without a token are dropped. Identical context texts count once. Raises TypeError /
    ValueError for a k that is not an integer >= 1, and ValueError for an answer without any token
    (`answer_can_be_judged`): there is nothing to judge.
    """
    check_k(k)
    sentences = _answer_sentences(answer)
    if not sentences:
        raise ValueError(f"the answer {answer!r} has no word to judge; leave the query out of context recall")
    # A line break between contexts keeps the last word of one from fusing with the first of the next.
    context_tokens = set(_tokenize("\n".join(dedupe(context_texts)[:k])))
    supported = sum(len(tokens & context_tokens) / len(tokens) >= SUPPORT_THRESHOLD for tokens in sentences)
    return supported / len(sentences)
