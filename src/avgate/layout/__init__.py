"""Where the pipeline's files live and how a stage reads them back: the usable clips and their
splits, the embeddings, labels, models and predictions of each seed."""
