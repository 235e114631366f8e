"""`demo_data`: write the built-in AVE-style demo dataset to data/raw/demo (`demo` params)."""

from __future__ import annotations

from pathlib import Path

from avgate.config import Params
from avgate.declare import ConfigError
from avgate.demo.dataset import DemoConfig, generate

DEMO_DIR = Path("data/raw/demo")


def run(params: Params, out: Path = DEMO_DIR) -> dict:
    """Generate the demo clips, annotations and group table into `out`."""
    try:
        config = _demo_config(params)
    except ValueError as error:
        raise ConfigError(f"params.yaml: demo section: {error}") from None
    return generate(config, out, workers=params.demo.workers)


def _demo_config(params: Params) -> DemoConfig:
    p = params.demo
    return DemoConfig(
        seed=p.seed,
        n_clips=p.n_clips,
        n_groups=p.n_groups,
        clip_seconds=p.clip_seconds,
        fps=p.fps,
        size=p.size,
        snr_db=(p.snr_db[0], p.snr_db[1]),
        shape_opacity=(p.shape_opacity[0], p.shape_opacity[1]),
        confound=p.confound,
        min_event_seconds=p.event_seconds[0],
        max_event_seconds=p.event_seconds[1],
        corrupt_fraction=p.corrupt_fraction,
        visual_cue=p.visual_cue,
        audio_cue=p.audio_cue,
    )
