"""The model card (README.md) a finished run leaves beside its weights, ready for the Hugging Face Hub.

It opens with the YAML metadata the Hub reads (base model, language, library, pipeline tag, tags,
datasets, a model-index with the dev metrics), then says what the model was trained on as it really
was: the counts of labelled queries, answers and corpus sentences the run used. It names files, never
the folders of the machine that trained it.
"""

from dataclasses import dataclass
from pathlib import Path

from reranker_kit.basics.model_files import BUNDLED_MODEL_ALIAS, bundled_hub_id
from reranker_kit.finetune.verdict import GAIN, LOSS, WITHIN_NOISE, Verdict

LIBRARY_NAME = "sentence-transformers"  # The Hub lists rerankers under it; the folder also loads in transformers.
PIPELINE_TAG = "text-ranking"
TAGS = ["reranker", "cross-encoder", "text-ranking", "transformers", "vietnamese"]
RANKING_PREFIXES = ("hit@", "mrr@", "ndcg@")


@dataclass(frozen=True)
class CardFacts:
    """What the card says about how the run was set up (the rest comes from training_info.json's record)."""

    corpus_file: str  # File names only: the card never names a folder of the training machine.
    train_file: str
    dev_top_n: int
    augment_with_answers: bool
    pseudo_queries_per_document: int
    settings: dict  # {setting: value} of the settings that shape the model, shown as a table.
    hub_model_id: str | None = None
    hub_dataset_id: str | None = None


def write_model_card(path: Path, info: dict, dev_metrics: dict, facts: CardFacts) -> None:
    """Writes README.md: Hub metadata, then what the model was trained on, how it scored and how to load it."""
    from huggingface_hub import ModelCard

    model_name = (facts.hub_model_id or path.parent.name).split("/")[-1]
    body = [f"# {model_name}", "", *_origin(info), *_training_data(info, facts), *_settings(facts.settings),
            *_dev_table(dev_metrics), *_usage(facts.hub_model_id),
            f"Trained in {info['wall_time_s']:.0f} s on {info['device']}.", ""]
    card = ModelCard(f"---\n{_metadata(info, dev_metrics, model_name, facts).to_yaml()}\n---\n\n" + "\n".join(body))
    card.save(path)


def hub_base_model(info: dict) -> str | None:
    """The Hub id the run started from; None for a local folder (its path means nothing elsewhere)."""
    name, resolved = info["base_model"]["name"], info["base_model"]["resolved"]
    return bundled_hub_id(name) or (name if name == resolved else None)


def _metadata(info: dict, dev_metrics: dict, model_name: str, facts: CardFacts):
    from huggingface_hub import EvalResult, ModelCardData

    dataset_id = facts.hub_dataset_id
    results = [EvalResult(task_type=PIPELINE_TAG, task_name="Reranking the first stage's top "
                          f"{facts.dev_top_n} candidates", dataset_type=dataset_id or Path(facts.train_file).stem,
                          dataset_name=f"{facts.train_file}, held-out dev queries", dataset_split="dev",
                          metric_type=key, metric_name=key, metric_value=round(float(value), 4))
               for key, value in dev_metrics.items() if key.startswith(RANKING_PREFIXES)]
    return ModelCardData(base_model=hub_base_model(info), language=["vi"], library_name=LIBRARY_NAME,
                         pipeline_tag=PIPELINE_TAG, tags=TAGS, datasets=[dataset_id] if dataset_id else None,
                         model_name=model_name, eval_results=results or None)


def _origin(info: dict) -> list[str]:
    name = info["base_model"]["name"]
    base = hub_base_model(info)
    described = f"`{base}`" if base else f"a local model folder (`{Path(name).name}`)"
    lines = [f"A cross-encoder reranker (query + passage -> one relevance logit) fine-tuned from {described} with "
             "the club's reranker kit (`fine_tune_reranker.py`).", ""]
    if name == BUNDLED_MODEL_ALIAS:
        lines += ["The base model is English and uncased (its tokenizer strips Vietnamese diacritics): a run to try "
                  "the kit offline, not a model for Vietnamese queries.", ""]
    return lines


def _training_data(info: dict, facts: CardFacts) -> list[str]:
    data, pairs = info["data"], info["pairs"]
    answers, sentences = data.get("answer_queries", 0), data.get("corpus_sentence_queries", 0)
    if answers:
        answer_line = f"- {answers} ground-truth answers of those queries, each as an extra query"
    else:
        answer_line = "- no ground-truth answers as extra queries" + (
            "" if facts.augment_with_answers else " (`augment_with_answers` off)")
    if sentences:
        sentence_line = (f"- {sentences} sentences of the corpus's documents (up to "
                         f"{facts.pseudo_queries_per_document} per document), each as a query for its document")
    else:
        sentence_line = "- no corpus sentences as extra queries" + (
            "" if facts.pseudo_queries_per_document else " (`pseudo_queries_per_document` 0)")
    return ["## Training data", "",
            f"- {data['train_queries']} labelled queries from `{facts.train_file}` over the "
            f"{data['documents']} documents of `{facts.corpus_file}`; {data['dev_queries']} more held "
            "out as dev queries (never trained on)",
            answer_line, sentence_line,
            f"- {data['augmented_train_queries']} training queries in all, giving {pairs.get('positive_pairs', 0)} "
            f"positive, {pairs.get('hard_negative_pairs', 0)} hard negative and "
            f"{pairs.get('random_negative_pairs', 0)} random negative pairs", ""]


def _settings(settings: dict) -> list[str]:
    rows = [f"| `{name}` | {value} |" for name, value in settings.items()]
    return ["## Training settings", "", "The settings that shape the model (`fine_tune_reranker.py`'s flags of the same "
            "names).", "", "| setting | value |", "|---|---|", *rows, ""]


def _dev_table(dev_metrics: dict) -> list[str]:
    if not dev_metrics.get("baseline"):
        return ["No dev queries were held out (`dev_ratio` 0), so no dev metric was measured.", ""]
    keys = [key for key in dev_metrics["baseline"] if key in dev_metrics]
    columns = [("first stage", dev_metrics.get("first_stage") or {}), ("before fine-tuning", dev_metrics["baseline"]),
               ("after", dev_metrics), ("fused with first stage", dev_metrics.get("fused") or {})]

    def cell(values: dict, key: str) -> str:
        return f"{values[key]:.4f}" if key in values else ""

    verdict = [verdict_paragraph(dev_metrics), ""] if dev_metrics.get("verdict") else []
    return ["## Dev metrics (reranking the first stage's candidates for the held-out queries)", "", *verdict,
            "| metric | " + " | ".join(name for name, _ in columns) + " |", "|---" * (len(columns) + 1) + "|",
            *[f"| {key} | " + " | ".join(cell(values, key) for _, values in columns) + " |" for key in keys], ""]


def verdict_paragraph(dev_metrics: dict) -> str:
    """The verdict in words (`finetune.verdict`): what the dev queries' paired interval shows, and what was saved."""
    stored = Verdict(dev_metrics["verdict"], dev_metrics.get("saved_weights", "trained"),
                     dev_metrics.get("metric_for_best_model"), dev_metrics.get("trained_vs_base"))
    meaning = {GAIN: "fine-tuning beat the base model on the dev queries beyond noise",
               LOSS: "the fine-tuned weights ranked below the base model on the dev queries beyond noise",
               WITHIN_NOISE: "the dev queries cannot tell the fine-tuned weights from the base model: the difference "
                             "is within noise"}.get(stored.verdict, stored.verdict)
    return (f"**Verdict: {stored.verdict}.** {meaning[0].upper()}{meaning[1:]} ({stored.evidence()}). This folder holds the "
            f"{stored.saved} weights.")


def _usage(hub_model_id: str | None) -> list[str]:
    model = hub_model_id or "path/to/this/folder"
    return ["## Usage", "", "With the kit (`rerank.py`):", "", "```python", "from rerank import Reranker", "",
            f'reranker = Reranker(model_name="{model}")',
            'scores, ranked_passages = reranker("CLB tuyển thành viên khi nào ạ?", passages)  # best first', "```", "",
            "With FlagEmbedding (same scores):", "", "```python", "from FlagEmbedding import FlagReranker", "",
            f'reranker = FlagReranker("{model}")',
            'scores = reranker.compute_score([["CLB tuyển thành viên khi nào ạ?", passage] for passage in passages])',
            "```", "", "With sentence-transformers (scores through a sigmoid by default):", "", "```python",
            "from sentence_transformers import CrossEncoder", "", f'model = CrossEncoder("{model}")',
            'ranked = model.rank("CLB tuyển thành viên khi nào ạ?", passages)', "```", ""]
