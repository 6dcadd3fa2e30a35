"""Models built offline for tests and benchmarks: a small cased tokenizer and XLM-RoBERTa classifiers.

No XLM-R tokenizer or weights can be downloaded here. A Unigram tokenizer trained on the sample texts,
wrapped as XLMRobertaTokenizerFast, and a model built from a config with random weights exercise the
architecture the club fine-tunes (namdp-ptit/ViRanker, bge-reranker-v2-m3): RoBERTa position offsets,
<s> A </s></s> B </s> pairs, no token type ids.
"""

from pathlib import Path

import pandas as pd

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS_CSV = REPOSITORY_ROOT / "CLB_PROPTIT.csv"
SAMPLE_TRAIN_XLSX = REPOSITORY_ROOT / "train_data_proptit.xlsx"
# The earlier README's CPU recipe on the bundled MiniLM, every setting given so no CPU sizing changes it
# (tests/test_quality.py, bench/shift_experiment.py and bench/quick_start_seeds.py train with it).
CPU_QUICK_START = ["--base_model", "bundled-minilm", "--max_seq_length", "128", "--epochs", "2", "--lr", "5e-5",
                   "--batch_size", "8", "--gradient_accumulation_steps", "1", "--pseudo_queries_per_document", "4"]
# XLM-RoBERTa-large, the shape of namdp-ptit/ViRanker and BAAI/bge-reranker-v2-m3 (568M parameters).
XLMR_LARGE_SHAPE = dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096,
                        vocab_size=250002, max_position_embeddings=514)
# A shape that trains in seconds on a CPU.
XLMR_TINY_SHAPE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       max_position_embeddings=130)


def train_unigram_tokenizer(vocab_size: int = 2000):
    """A cased Unigram tokenizer trained on the sample corpus and train queries, as XLMRobertaTokenizerFast."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizerFast

    texts = pd.read_csv(SAMPLE_CORPUS_CSV)["Văn bản"].tolist() + pd.read_excel(SAMPLE_TRAIN_XLSX)["Query"].tolist()
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=special,
                                                                 unk_token="<unk>", show_progress=False))
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return XLMRobertaTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=512)


def xlmr_classifier(shape: dict, attn_implementation: str | None = None):
    """An XLM-RoBERTa one-logit sequence classifier with random weights and the given shape."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    config = XLMRobertaConfig(**shape, num_labels=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    if attn_implementation:
        config._attn_implementation = attn_implementation
    return XLMRobertaForSequenceClassification(config)


def save_tiny_xlmr(folder: Path) -> Path:
    """Writes a tiny random XLM-R reranker and its tokenizer to `folder`, loadable as --base_model."""
    tokenizer = train_unigram_tokenizer()
    model = xlmr_classifier({**XLMR_TINY_SHAPE, "vocab_size": len(tokenizer)})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
