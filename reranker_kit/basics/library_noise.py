"""Two transformers warnings the kit's loads would print although they do not apply, kept out of the log.

- "You should probably TRAIN this model" when only a ranking head (`classifier.*`, `score.*`) or BERT's
  pooler is newly initialised: the kit trains that head itself, and says so in its own words where a head
  is untrained (training's weight choice, `Reranker`'s warning, main.py's labels). A load that misses any
  other weight keeps the warning: that is a broken model.
- transformers 4.57.3 to 4.57.x warns of an "incorrect regex pattern" and `fix_mistral_regex` for every local
  tokenizer of XLM-R's family saved by those versions (it checks the saving version, not the tokenizer):
  the pattern it means exists only in Mistral tokenizers.
"""

import ast
import logging
import re

HEAD_KEY = re.compile(r"^(?:[a-z_]+\.)?(?:classifier|score|pooler)\.")
NEWLY_INITIALISED = re.compile(r"are newly initialized: (\[.*?\])\nYou should probably TRAIN", re.DOTALL)


def _only_head_keys(message: str) -> bool:
    match = NEWLY_INITIALISED.search(message)
    if not match:
        return False
    try:
        keys = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return False
    return bool(keys) and all(HEAD_KEY.match(key) for key in keys)


class _FalseAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("fix_mistral_regex" in message or _only_head_keys(message))


_FILTER = _FalseAdvice()


def quiet_false_advice() -> None:
    """Keeps the two warnings above out of transformers' log (idempotent)."""
    for name in ("transformers.modeling_utils", "transformers.tokenization_utils_base"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
