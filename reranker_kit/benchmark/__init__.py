"""The retrieve-then-rerank benchmark that main.py runs."""
