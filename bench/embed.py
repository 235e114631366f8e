"""Embedding throughput on real speech (FSDD), against decode-only and a librosa loop, in one run.

    python bench/embed.py [--fsdd ../shared/data/fsdd] [--workers 1 2] [--crepe-clips 300]
                          [--librosa-clips 300]

Every rate is clips per second of wall time over the same files, at each DataLoader worker count
(default: one fewer than the usable cores, and as many):
- decode-only: the embed stage's DataLoader path with an encoder that only decodes (soundfile,
  resampled to 16 kHz) and returns nothing: the ceiling for a cheap encoder;
- logmel: the embed stage's path with the `logmel` encoder (decode + log-mel). Where the workers
  leave a core free, the main process log-mels while they decode; where they take every core,
  each worker also transforms what it decodes, and the transform's cost shows in full;
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
from avgate.encoders.base import Encoder
from avgate.encoders.registry import build
from avgate.stages.embed import embed_clips, in_main, usable_cores

SAMPLE_RATE = 16000


class DecodeOnly(Encoder):
    """Decodes like `logmel` does and returns an empty (n_seconds, 0) array (in the workers)."""

    kind, modality, dim = "decode-only", "audio", 0

    def load(self, path: str, n_seconds: int) -> int:
        media.decode_audio(path, SAMPLE_RATE)
        return n_seconds

    def embed(self, batch: list[int]) -> list[np.ndarray]:
        return [np.zeros((n_seconds, 0), dtype=np.float32) for n_seconds in batch]


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
    cores = usable_cores()
    counts = sorted({max(1, cores - 1), cores})
    parser.add_argument("--workers", type=int, nargs="+", default=counts)
    parser.add_argument("--crepe-clips", type=int, default=300)
    parser.add_argument("--librosa-clips", type=int, default=300)
    args = parser.parse_args()
    folder = Path(args.fsdd) / "recordings"
    if not folder.is_dir():
        raise SystemExit(f"{folder}: not found; pass --fsdd PATH (the FSDD snapshot)")
    paths = sorted(str(p) for p in folder.glob("*.wav"))
    params = EmbedParams(
        encoders={"logmel": "logmel", "crepe": "crepe"},
        device="cpu",
        sections={"logmel": {}, "crepe": {"model": "tiny"}},
    )
    logmel = build("logmel", params)
    print(f"{len(paths)} FSDD files, {cores} usable CPU cores")
    lines, best = [], 0.0
    for workers in args.workers:
        decode = rate(DecodeOnly(None), paths, workers)
        embedded = rate(logmel, paths, workers)
        best = max(best, embedded)
        where = "main process" if in_main(logmel, workers) else "workers"
        lines.append(
            f"{workers} workers: decode-only {decode:7.1f} clips/s, logmel {embedded:7.1f} "
            f"clips/s (transform in the {where}): {embedded / decode:4.2f} x decode-only "
            "(target >= 0.8)"
        )
    crepe = rate(build("crepe", params), paths[: args.crepe_clips], max(args.workers))
    plain = librosa_rate(paths[: args.librosa_clips])
    print("\n".join(lines))
    print(f"librosa loop {plain:7.1f} clips/s ({args.librosa_clips} clips, one process)")
    times = best / plain
    print(f"best logmel  {best:7.1f} clips/s: {times:5.1f} x the librosa loop (target >= 10)")
    crepe_workers = max(args.workers)
    print(f"crepe tiny   {crepe:7.1f} clips/s ({args.crepe_clips} clips, {crepe_workers} workers)")


if __name__ == "__main__":
    main()
