"""The one training loop for every trainable thing, after Lightning and the Hugging Face Trainer.

A `Task` (`task.py`) says what a batch is, how its loss and the validation scores are computed and
what state a checkpoint holds; `fit` (`loop.py`) runs the epochs, keeps the best epoch by the
selection metric (`selection.py`), stops early, checks every number for NaN and Inf (`finite.py`)
and saves a checkpoint after each epoch that a killed run resumes from (`checkpoint.py`,
`rng.py`); callbacks (`callbacks.py`, `bars.py`, `live.py`) show progress and log with dvclive.

Heads on cached embeddings (`avgate.finetune.none`), LoRA adapters (`avgate.finetune.lora`) and
the trained eventness methods (`avgate.eventness`) all train here. Nothing in this package reads
params.yaml or imports the stage layer: the callers pass plain values.
"""
