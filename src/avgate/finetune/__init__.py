"""Training modes, one package per value of the param `train.finetune`.

- `none`: a head on the cached embeddings (`avgate.finetune.none`);
- `lora`: LoRA adapters and a head on a pretrained audio encoder, from the raw audio
  (`avgate.finetune.lora`).

Each package trains through the one loop of `avgate.training` and offers the train stage the same
few names: `train(...)` returns a `Trained` (the model, its description for head.json and the
loop's result), `save(model, folder)` writes the model's weights into models/seed<k>/, `load`
reads them back for evaluation. Both packages read only what the stage hands them; what they
share lives in `avgate.training` or another shared module, never one mode importing the other.
The train stage depends on `src/avgate/finetune/${train.finetune}` only, so a change to the mode
not in use does not re-run it.
"""
