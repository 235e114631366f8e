"""Where a light transform runs (the main process or the DataLoader workers) changes the speed,
never the embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from avgate.encoders.base import Encoder
from avgate.encoders.registry import make
from avgate.stages import embed


@pytest.fixture
def clips(tmp_path):
    rng = np.random.default_rng(0)
    paths, seconds = [], []
    for i in range(40):
        n = 1 + i % 3
        rate = (8000, 16000, 22050)[i % 3]
        soundfile.write(tmp_path / f"c{i}.wav", rng.normal(0, 0.1, n * rate - i), rate)
        paths.append(str(tmp_path / f"c{i}.wav"))
        seconds.append(n)
    return paths, seconds


def embedded(paths, seconds, encoder, workers):
    rows = {}
    embed.embed_clips(paths, seconds, encoder, rows.__setitem__, workers, 64, "test")
    return [rows[i] for i in range(len(paths))]


def test_light_transform_in_main_or_in_workers_gives_the_same_rows(clips, monkeypatch):
    encoder = make("logmel", n_mels=32, segments=2)
    monkeypatch.setattr(embed, "usable_cores", lambda: 4)
    assert embed.in_main(encoder, 1)
    in_main = embedded(*clips, encoder, 1)
    monkeypatch.setattr(embed, "usable_cores", lambda: 1)
    assert not embed.in_main(encoder, 1)
    in_workers = embedded(*clips, encoder, 1)
    assert [r.shape for r in in_main] == [(s, 96) for s in clips[1]]
    for a, b in zip(in_main, in_workers, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("workers", "cores", "expected"),
    [(0, 2, True), (1, 2, True), (2, 2, False), (2, 16, True), (3, 16, False), (8, 16, False)],
)
def test_logmel_runs_in_main_only_where_a_free_core_keeps_up(monkeypatch, workers, cores, expected):
    monkeypatch.setattr(embed, "usable_cores", lambda: cores)
    assert embed.in_main(make("logmel", n_mels=32), workers) is expected


def test_a_model_always_runs_in_main_and_a_plain_encoder_never(monkeypatch):
    class Plain(Encoder):  # batched and light as the base declares them: False
        kind, modality, dim = "plain", "audio", 1

        def load(self, path, n_seconds):
            return n_seconds

        def embed(self, batch):
            return [np.zeros((n, 1), np.float32) for n in batch]

    class Model(Plain):
        batched = True

    monkeypatch.setattr(embed, "usable_cores", lambda: 2)
    assert embed.in_main(Model(None), 8) and not embed.in_main(Plain(None), 0)


def test_workers_prefetch_enough_chunks_to_cover_a_batch():
    assert embed.prefetch([1] * 160, 64, 1) == 5  # four 16-s chunks per batch, and one more
    assert embed.prefetch([1] * 160, 64, 4) == 2  # never below torch's default
    assert embed.prefetch([10] * 160, 64, 1) == 2  # a 160-s chunk fills a batch on its own
