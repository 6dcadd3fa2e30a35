"""The model card (README.md) of a fine-tuned embedder run, ready for the Hugging Face Hub.

YAML metadata the Hub reads (base model, language, library, pipeline tag, dev metrics), then what it was
trained on, the base and fine-tuned encoder's first-stage metrics on the dev queries, and how to load it.
"""

from pathlib import Path

from reranker_kit.basics.model_files import bundled_hub_id
from reranker_kit.finetune.settings import flat_arguments
from reranker_kit.finetune.verdict import Verdict

PIPELINE_TAG = "sentence-similarity"
TAGS = ["sentence-transformers", "feature-extraction", "dense-retrieval", "vietnamese"]


def _hub_base_model(base: dict) -> str | None:
    return bundled_hub_id(base["name"]) or (base["name"] if base["name"] == base["resolved"] else None)


def write_embedder_model_card(path: Path, info: dict, dev_metrics: dict) -> None:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    arguments, data = flat_arguments(info["arguments"]), info["data"]
    name = path.parent.name
    saved = dev_metrics.get("base" if dev_metrics.get("saved_weights") == "base" else "fine_tuned") or {}
    results = [EvalResult(task_type="retrieval", task_name="First-stage retrieval over the corpus",
                          dataset_type=Path(arguments["train_xlsx"]).stem,
                          dataset_name=f"{Path(arguments['train_xlsx']).name}, held-out dev queries",
                          dataset_split="dev", metric_type=key, metric_name=key, metric_value=round(float(value), 4))
               for key, value in (saved.get("dense") or {}).items()]
    metadata = ModelCardData(base_model=_hub_base_model(info["base_model"]), language=["vi"],
                             library_name="sentence-transformers", pipeline_tag=PIPELINE_TAG, tags=TAGS,
                             model_name=name, eval_results=results or None)
    body = [f"# {name}", "", "A sentence-transformers bi-encoder (the first stage of retrieve-then-rerank) fine-tuned "
            "with the club's reranker kit (`fine_tune_embedder.py`): MultipleNegativesRankingLoss over (query, "
            f"positive, {arguments['hard_neg_method']}-mined hard negatives).", "",
            verdict_line(dev_metrics), "", "## Training data", "",
            f"- {data['train_queries']} labelled queries, {data['answer_queries']} answers and "
            f"{data['corpus_sentence_queries']} corpus sentences as queries, over {data['documents']} documents; "
            f"{data['train_rows']} training rows; {data['dev_queries']} dev queries held out", "",
            *_dev_table(dev_metrics), "## Usage", "", "```python", "from sentence_transformers import SentenceTransformer",
            "", 'model = SentenceTransformer("path/to/this/folder")',
            'embeddings = model.encode_query(["CLB tuyển thành viên khi nào ạ?"])', "```", "",
            "With the kit: `python main.py --retriever hybrid` uses the newest finished embedder run.", "",
            f"Trained in {info['wall_time_s']:.0f} s on {info['device']}.", ""]
    ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n" + "\n".join(body)).save(path)


def verdict_line(dev_metrics: dict) -> str:
    """The verdict in `finetune.verdict`'s words, and which encoder this folder holds."""
    stored = Verdict(dev_metrics["verdict"], dev_metrics.get("saved_weights", "fine-tuned"),
                     dev_metrics.get("metric_for_best_model"), dev_metrics.get("trained_vs_base"))
    holds = "**this folder holds the base encoder**" if stored.saved == "base" else "this folder holds the fine-tuned encoder"
    return f"**Verdict: {stored.verdict}** ({stored.evidence()}): {holds}."


def _dev_table(dev_metrics: dict) -> list[str]:
    if "base" not in dev_metrics:
        return []
    columns = [("BM25", dev_metrics["bm25"]), ("base dense", dev_metrics["base"]["dense"]),
               ("fine-tuned dense", dev_metrics["fine_tuned"]["dense"]),
               (f"base hybrid (w {dev_metrics['base']['hybrid_dense_weight']:.1f})", dev_metrics["base"]["hybrid"]),
               (f"fine-tuned hybrid (w {dev_metrics['fine_tuned']['hybrid_dense_weight']:.1f})",
                dev_metrics["fine_tuned"]["hybrid"])]
    keys = list(dev_metrics["bm25"])
    return ["## Dev metrics (first stage over the whole corpus, held-out queries)", "",
            "| metric | " + " | ".join(label for label, _ in columns) + " |", "|---" * (len(columns) + 1) + "|",
            *[f"| {key} | " + " | ".join(f"{values[key]:.4f}" for _, values in columns) + " |" for key in keys], ""]
