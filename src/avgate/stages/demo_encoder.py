"""`demo_encoder`: write the demo's stand-in pretrained WavLM (random weights from `demo.seed`)
to data/pretrained/demo-wavlm, the base model of `train.finetune: lora` on the demo."""

from __future__ import annotations

from pathlib import Path

from avgate.config import Params
from avgate.demo.encoder import write_demo_wavlm
from avgate.files import atomic_dir

DEMO_ENCODER_DIR = Path("data/pretrained/demo-wavlm")


def run(params: Params, out: Path = DEMO_ENCODER_DIR) -> Path:
    """Write the stand-in WavLM to `out`; returns `out`."""
    with atomic_dir(out) as tmp:
        write_demo_wavlm(tmp, params.demo.seed)
    return out
