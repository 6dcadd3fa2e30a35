"""Fine-tuning: flags, negatives, datasets, the Trainer, dev evaluation, one run, cross-validation, the job."""
