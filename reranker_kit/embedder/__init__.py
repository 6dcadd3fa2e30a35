"""Fine-tuning the first stage: a sentence-transformers bi-encoder trained on the kit's mined triples.

`config.py` holds the typed settings, `dataset.py` the (query, positive, hard negatives) rows, `trainer.py`
the loss and the SentenceTransformerTrainer, `dev_evaluation.py` the first-stage metrics of the base and
each checkpoint, `run.py` one training run, `outputs.py` the run folder's files and `job.py` the whole job.
Only `run.py`, `trainer.py` and `dev_evaluation.py`'s evaluator load torch.
"""
