"""Where a light transform runs (the main process or the DataLoader workers) changes the speed,
never the embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from avgate.encoders.logmel import LogmelEncoder
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
    encoder = LogmelEncoder(16000, 32, 400, 160, segments=2)
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
    assert embed.in_main(LogmelEncoder(16000, 32, 400, 160, segments=1), workers) is expected


def test_a_model_always_runs_in_main_and_a_plain_encoder_never(monkeypatch):
    class Model:
        batched = True

    class Plain:
        pass

    monkeypatch.setattr(embed, "usable_cores", lambda: 2)
    assert embed.in_main(Model(), 8) and not embed.in_main(Plain(), 0)


def test_workers_prefetch_enough_chunks_to_cover_a_batch():
    assert embed.prefetch([1] * 160, 64, 1) == 5  # four 16-s chunks per batch, and one more
    assert embed.prefetch([1] * 160, 64, 4) == 2  # never below torch's default
    assert embed.prefetch([10] * 160, 64, 1) == 2  # a 160-s chunk fills a batch on its own
