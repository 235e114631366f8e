"""Faults of the embed stage name their cause and leave nothing behind: a NaN or Inf embedding
names the clip, a visual encoder on audio-only clips names a clip and the fix, a killed writer's
shard files go with the next writer, workers exit with their parent, and the profile reports
the peak memory of worker processes too."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from avgate import media
from avgate.embedding_store import EmbeddingStore
from avgate.encoders.base import Encoder
from avgate.encoders.registry import make
from avgate.errors import StageError
from avgate.stages import embed
from tests.conftest import write_params

IDENTITY = {"encoder": "test"}


def clips_table(paths: list[Path], seconds: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": [p.stem for p in paths],
            "path": [str(p) for p in paths],
            "sha256": [f"sha-{p.stem}" for p in paths],
            "duration_s": [float(s) for s in seconds],
            "has_video": False,
            "split": "train",
        }
    )


def wav(path: Path, seconds: int) -> Path:
    soundfile.write(path, np.random.default_rng(0).normal(0, 0.1, 16000 * seconds), 16000)
    return path


class Poisoned(Encoder):
    """Rows of zeros, with `value` in second 1 of the clips named bad*."""

    kind, modality, dim = "poisoned", "audio", 4

    def __init__(self, value: float) -> None:
        super().__init__(None)
        self.value = value

    def load(self, path: str, n_seconds: int) -> tuple[str, int]:
        return path, n_seconds

    def embed(self, batch: list[tuple[str, int]]) -> list[np.ndarray]:
        out = []
        for path, n_seconds in batch:
            rows = np.zeros((n_seconds, self.dim), dtype=np.float32)
            if Path(path).name.startswith("bad"):
                rows[1, 2] = self.value
            out.append(rows)
        return out


@pytest.mark.parametrize(("value", "counted"), [(np.nan, "1 NaN and 0"), (np.inf, "0 NaN and 1")])
@pytest.mark.parametrize("workers", [0, 1])
def test_embed_refuses_a_non_finite_row_names_the_clip_and_stores_nothing(
    tmp_path, value, counted, workers
):
    clips = clips_table([tmp_path / "good.wav", tmp_path / "bad.wav"], [2, 3])
    store = EmbeddingStore(tmp_path / "cache", IDENTITY, Poisoned.dim, "float32")
    params = write_params(tmp_path, {"embed": {"workers": workers}})
    with pytest.raises(StageError) as caught:
        embed.fill_store(store, clips, Poisoned(value), params, rank=0, world=1)
    assert str(caught.value) == (
        f"{tmp_path / 'bad.wav'} (clip bad): the poisoned embedding holds {counted} infinite "
        "values (seconds 1); check the file's samples (embed stores no NaN or Inf)"
    )
    assert store.missing([("sha-good", 2)]) == [("sha-good", 2)]
    assert [p.name for p in store.folder.iterdir()] == [".lock"]


def test_a_value_beyond_float16_names_the_clip_and_the_dtype_to_use():
    with pytest.raises(StageError, match=r"^a\.wav \(clip a\): .* 0 NaN and 1 infinite .*float32"):
        embed.finite(np.array([[1.0, 70000.0]]), "float16", "a.wav (clip a)", "wavlm")
    assert embed.finite(np.array([[1.0, 2.0]]), "float16", "a", "wavlm").dtype == np.float16


def test_rows_a_store_holds_from_before_the_check_are_refused_when_the_split_is_written(tmp_path):
    store = EmbeddingStore(tmp_path / "cache", IDENTITY, 2, "float32")
    with store.shard([("sha-x", 1)]) as write:
        write(0, np.array([[np.nan, 0.0]], dtype=np.float32))  # the store itself checks nothing
    clips = clips_table([Path("data/raw/x.wav")], [1])
    with pytest.raises(StageError, match=r"^data/raw/x\.wav \(clip x\): the embeddings store .*"):
        embed.write_split(store, clips, tmp_path / "train.npy")


def test_a_visual_encoder_on_audio_only_clips_names_a_clip_and_the_fix(tmp_path):
    clips = clips_table([tmp_path / "a.wav", tmp_path / "b.wav"], [1, 1])
    clips.loc[0, "has_video"] = True
    encoder = make("frames", fps=2, size=8, grid=2, hist_bins=4, fg_threshold=0.1)
    with pytest.raises(media.MediaError) as caught:
        embed.require_video(clips, encoder)
    assert str(caught.value) == (
        f"{tmp_path / 'b.wav'}: no video stream (1 of 2 clips have none), and the frames encoder "
        "reads video frames: use an audio encoder, or leave frames out of embed.encoders"
    )
    embed.require_video(clips.iloc[:1], encoder)
    embed.require_video(clips, make("logmel"))


def test_a_media_error_in_a_worker_reaches_the_main_process_as_itself(tmp_path):
    path = wav(tmp_path / "speech.wav", 1)
    encoder = make("frames", fps=2, size=8, grid=2, hist_bins=4, fg_threshold=0.1)
    with pytest.raises(media.MediaError, match=r"speech\.wav: no video stream$"):
        embed.embed_clips([str(path)], [1], encoder, lambda i, rows: None, 1, 64, "test")


def run_python(code: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )


WRITER = """
    import sys
    import numpy as np
    from avgate.embedding_store import EmbeddingStore
    store = EmbeddingStore("cache", {"encoder": "test"}, 2, "float32")
    with store.shard([("sha-w", 3)]) as write:
        write(0, np.ones((3, 2), dtype=np.float32))
        print("writing", flush=True)
        sys.stdin.readline()
"""


def test_a_killed_writers_shard_files_go_with_the_next_writer_and_a_live_ones_stay(tmp_path):
    killed, live = run_python(WRITER, tmp_path), run_python(WRITER, tmp_path)
    assert killed.stdout.readline() == live.stdout.readline() == "writing\n"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    store = EmbeddingStore(tmp_path / "cache", IDENTITY, 2, "float32")
    (store.folder / "shard-orphan.npy").write_bytes(b"rows renamed, index never written")
    (store.folder / ".shard-gone.index.parquet.tmp").write_bytes(b"index of a killed writer")
    assert len(list(store.folder.glob(".shard-*.npy.tmp"))) == 2
    with store.shard([("sha-n", 1)]) as write:
        write(0, np.zeros((1, 2), dtype=np.float32))
    left = sorted(p.name for p in store.folder.glob("*shard-*"))
    assert len(left) == 3 and left[0].endswith(".npy.tmp")  # the live writer's, and the new shard
    live.communicate("\n")
    assert live.returncode == 0
    store = EmbeddingStore(tmp_path / "cache", IDENTITY, 2, "float32")
    assert store.missing([("sha-w", 3), ("sha-n", 1)]) == []
    assert store.rows("sha-w", 3).tolist() == [[1.0, 1.0]] * 3
    assert not list(store.folder.glob(".*.tmp"))


def test_a_failed_shard_leaves_no_file(tmp_path):
    store = EmbeddingStore(tmp_path, IDENTITY, 2, "float32")
    with pytest.raises(RuntimeError, match="1 clips were not written"), store.shard([("a", 1)]):
        pass
    assert [p.name for p in store.folder.iterdir()] == [".lock"]


def processes_with_parent(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a reaped or dead worker holds no memory)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


EMBED_WITH_WORKERS = """
    import time
    import numpy as np
    from avgate.encoders.base import Encoder
    from avgate.stages import embed

    class Plain(Encoder):  # 1 MB a second: results fill the queue the main process stopped reading
        kind, modality, dim = "plain", "audio", 250_000
        def load(self, path, n):
            return n
        def embed(self, batch):
            return [np.ones((n, self.dim), dtype=np.float32) for n in batch]

    def write(i, rows):
        print("busy", flush=True)
        time.sleep(600)

    embed.embed_clips([str(i) for i in range(400)], [1] * 400, Plain(None), write, 2, 64, "test")
"""

MAP_WITH_WORKERS = """
    import time
    from avgate.parallel import ordered_map

    def slow(x):
        time.sleep(600)

    print("busy", flush=True)
    list(ordered_map(slow, range(8), workers=2, desc="test", progress=False))
"""


@pytest.mark.parametrize("code", [EMBED_WITH_WORKERS, MAP_WITH_WORKERS], ids=["embed", "pool"])
def test_workers_exit_within_seconds_when_the_main_process_is_killed(tmp_path, code):
    main = run_python(code, tmp_path)
    assert main.stdout.readline() == "busy\n"
    deadline = time.monotonic() + 30
    while len(workers := processes_with_parent(main.pid)) < 2:
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.1)
    time.sleep(1)  # the workers have results queued, or are inside a task
    main.send_signal(signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 5
    while alive := [pid for pid in workers if running(pid)]:
        if time.monotonic() > deadline:
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"workers {alive} outlived their parent by 5 s")
        time.sleep(0.1)


def test_a_worker_whose_parent_died_before_it_armed_the_signal_exits_at_once(tmp_path):
    code = "from avgate.parallel import die_with_parent; die_with_parent(1); input()"
    done = subprocess.run([sys.executable, "-c", code], timeout=30, stdin=subprocess.PIPE)
    assert done.returncode == -signal.SIGTERM


def test_the_profile_reports_a_child_that_peaked_above_the_main_process(tmp_path):
    code = """
        import subprocess, sys
        from avgate.profiles import recorded
        grow = "x = bytearray(b'1') * (600 * 2**20)"
        with recorded("test"):
            subprocess.run([sys.executable, "-c", grow], check=True)
    """
    # Started through a shell that forks: a process exec'd straight from pytest would inherit
    # pytest's peak (Linux carries it across exec) and hide the child's behind it.
    script = f"{sys.executable} -c {shlex.quote(textwrap.dedent(code))}; true"
    subprocess.run(["sh", "-c", script], cwd=tmp_path, check=True)
    profile = json.loads((tmp_path / "data/profiles/test.json").read_text())
    assert profile["peak_rss_children_mib"] >= 600
    assert profile["peak_rss_mib"] == profile["peak_rss_children_mib"]
