"""avgate: honest promote/reject decisions for audio and audio-visual models, driven by DVC."""

__version__ = "0.1.0"
