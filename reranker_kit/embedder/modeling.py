"""The encoder to train: the base sentence-transformers model, its token budget capped at what its positions
allow, word embeddings frozen when the settings ask, and the prompts it encodes queries and documents with."""

import logging

from transformers import set_seed

from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.embedder.arguments import EmbedderSettings
from reranker_kit.models.pair_encoding import position_limit
from reranker_kit.retrieval.dense import SentenceEncoder

logger = logging.getLogger(__name__)


def load_encoder(settings: EmbedderSettings) -> SentenceEncoder:
    """The base encoder, ready to train."""
    set_seed(settings.optimisation.seed)
    encoder = SentenceEncoder.load(settings.model.base_model)
    config = encoder.model[0].auto_model.config
    requested = settings.model.max_seq_length
    encoder.model.max_seq_length = min(requested, position_limit(config))
    if encoder.model.max_seq_length < requested:
        logger.warning("`max_seq_length` %d exceeds what %s supports; using %d", requested, settings.model.base_model,
                       encoder.model.max_seq_length)
    if settings.model.freeze_word_embeddings:
        encoder.model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    return encoder


def model_summary(settings: EmbedderSettings, encoder: SentenceEncoder) -> dict:
    model = encoder.model
    return {"name": settings.model.base_model, "resolved": resolve_model_name(settings.model.base_model),
            "max_length": model.max_seq_length, "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "embedding_dimension": model.get_embedding_dimension(), "prompts": model.prompts}
