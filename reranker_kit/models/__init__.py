"""Cross-encoders: resolving and loading them, encoding pairs once for training and scoring, the Reranker API."""
