"""The fine-tuning core both jobs share (FlagEmbedding's abc/finetune): settings, data, mining, run folders,
the Trainer glue, verdicts, outputs, cross-validation and the runner whose steps each job overrides."""
