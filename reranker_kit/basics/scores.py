"""Score transforms shared by the first stages, the rerankers and fusion: per-query normalisation, sigmoid."""

import numpy as np

# The usual constant of reciprocal rank fusion (Cormack et al., 2009).
RRF_K = 60


def normalise(values: np.ndarray, method: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    if method == "rrf":
        ranks = np.empty(values.size)
        ranks[np.argsort(-values, kind="stable")] = np.arange(1, values.size + 1)
        return 1.0 / (RRF_K + ranks)
    spread = values.max() - values.min() if method == "minmax" else values.std()
    if spread == 0:
        return np.zeros_like(values)
    return (values - (values.min() if method == "minmax" else values.mean())) / spread


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logits to probabilities, as FlagReranker's `normalize=True`."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
