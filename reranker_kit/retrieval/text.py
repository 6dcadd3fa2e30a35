"""How the lexical retrievers see Vietnamese text: syllables, with and without diacritics."""

import re
import unicodedata
from functools import lru_cache

# \w+ keeps one-character syllables (ở, ý, à): scikit-learn's default pattern drops them.
WORD_PATTERN = re.compile(r"\w+")


# Folding is per syllable and a corpus has few distinct syllables, so each is folded once.
@lru_cache(maxsize=1 << 18)
def fold_diacritics(text: str) -> str:
    """`Đăng ký` -> `dang ky`: students often type without diacritics."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


def analyze(text: str) -> list[str]:
    """Lower-cased syllables plus, for each one with diacritics, its folded form.

    Indexing both forms lets `hoc` (typed without diacritics) match `học`, while a query written with
    diacritics still matches its exact syllable more strongly than the folded one alone.
    """
    tokens = WORD_PATTERN.findall(unicodedata.normalize("NFC", text).lower())
    folded = [fold_diacritics(token) for token in tokens]
    return tokens + [plain for token, plain in zip(tokens, folded) if plain != token]
