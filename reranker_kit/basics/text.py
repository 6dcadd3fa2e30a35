"""How the kit reads Vietnamese text: one Unicode form, one tone-mark placement, syllables with and
without diacritics. Loaded texts keep their spelling (`clean_unicode`); indexing, matching and duplicate
detection go through `normalize_text`."""

import re
import unicodedata
from functools import lru_cache

# \w+ keeps one-character syllables (ở, ý, à): scikit-learn's default pattern drops them.
WORD_PATTERN = re.compile(r"\w+")
# Zero-width characters that editors and chat apps leave inside text; they split or hide words.
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"  # huyền, sắc, ngã, hỏi, nặng
# An open syllable ending in oa, oe or uy carries its tone on either vowel (hòa / hoà, khỏe / khoẻ,
# thủy / thuỷ); both placements are in use, so matching moves it onto the last vowel.
OPEN_GLIDE = re.compile(f"([ou])([{TONE_MARKS}])([aey])(?![\\w{TONE_MARKS}])", re.IGNORECASE)


def clean_unicode(text: str) -> str:
    """NFC, without zero-width characters: how every loaded text is kept (the model sees this)."""
    return unicodedata.normalize("NFC", text.translate(ZERO_WIDTH))


def normalize_text(text: str) -> str:
    """`clean_unicode`, and the tone marks of oa / oe / uy on the last vowel: how texts are matched."""
    decomposed = unicodedata.normalize("NFD", text.translate(ZERO_WIDTH))
    return unicodedata.normalize("NFC", OPEN_GLIDE.sub(r"\1\3\2", decomposed))


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
    tokens = WORD_PATTERN.findall(normalize_text(text).lower())
    folded = [fold_diacritics(token) for token in tokens]
    return tokens + [plain for token, plain in zip(tokens, folded) if plain != token]
