"""Malformed input gives every valid row and names every bad one (AVE annotations), or every
valid row or a DatasetError (CSV manifests): never a row dropped unsaid, never another exception."""

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avgate.datasets import DatasetError, load_records
from avgate.datasets.ave import read_annotations

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# AVE annotation lines

plain = st.text(  # text as decoded from a file: no lone surrogates
    st.characters(exclude_characters="&\n\r/\0", exclude_categories=("Cs",)), min_size=1, max_size=8
).filter(str.strip)
seconds = st.integers(0, 20)


@st.composite
def valid_line(draw) -> tuple[str, tuple]:
    label, video_id, quality = draw(plain), draw(plain), draw(st.sampled_from(["good", ""]))
    start = draw(seconds)
    end = start + draw(st.integers(1, 10))
    return f"{label}&{video_id}&{quality}&{start}&{end}", (label, video_id, quality, start, end)


bad_line = st.one_of(
    st.builds("&".join, st.lists(plain, min_size=1, max_size=4)),  # too few fields
    st.builds("&".join, st.lists(plain, min_size=6, max_size=7)),  # too many fields
    st.builds("x&v&good&{}&{}".format, seconds, seconds).filter(
        lambda line: int(line.split("&")[3]) >= int(line.split("&")[4])
    ),  # empty or reversed span
    st.builds("x&v&good&{}&9".format, st.sampled_from(["", "1.5", "two", "-1", "1e3"])),
    st.builds("{}&v&good&0&1".format, st.sampled_from(["", " ", "\t"])),  # no label
    st.just("x&&good&0&1"),  # no VideoID
    st.just("x&../v&good&0&1"),
)


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), valid_line(), bad_line), max_size=12), st.booleans())
def test_ave_lines_keep_every_distinct_annotation_and_name_every_bad_line(picks, header):
    lines = [good[0] if keep else bad for keep, good, bad in picks]
    text = "Category&VideoID&Quality&StartTime&EndTime\n" * header + "\n".join(lines)
    frame, rejected = read_annotations(io.StringIO(text), "Annotations.txt")
    annotations = [good[1] for keep, good, _ in picks if keep]
    assert len(frame) == len(set(annotations))
    assert frame["clip_id"].is_unique
    rows = frame[["label", "video_id", "quality", "start_s", "end_s"]].itertuples(index=False)
    assert {tuple(row) for row in rows} == set(annotations)
    bad_numbers = [i + 1 + header for i, (keep, _, _) in enumerate(picks) if not keep]
    assert [r.line for r in rejected] == bad_numbers
    assert all(r.file == "Annotations.txt" and r.reason for r in rejected)


@SETTINGS
@given(st.text(max_size=200))
def test_ave_parser_on_random_text_keeps_or_names_every_line(text):
    frame, rejected = read_annotations(io.StringIO(text), "Annotations.txt")
    lines = [line.rstrip("\r\n") for line in io.StringIO(text)]
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
        if lines[0].startswith("Category&"):
            lines[0] = ""
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    left_out = {r.line for r in rejected}
    kept = {tuple(line.split("&")) for n, line in numbered if n not in left_out}
    assert left_out <= {n for n, _ in numbered}
    assert len(frame) == len({(a, b, c, int(d), int(e)) for a, b, c, d, e in kept})


# CSV manifests

OPTIONAL = ["group", "split", "start", "end", "note"]
good_path = st.from_regex(r"[a-z]{1,4}(/[a-z]{1,4})?\.(wav|mp4)", fullmatch=True)
bad_path = st.sampled_from(["", ".", "../a.wav", "a/../../b.wav", "/abs/a.wav", "a\0.wav"])
good_cells = {
    "label": st.sampled_from(["dog", "rain, heavy", 'say "hi"', "7"]),
    "group": st.sampled_from(["alice", "bob", "0"]),
    "split": st.sampled_from(["train", "val", "test"]),
    "note": st.text(max_size=6),
}
bad_cell = st.one_of(st.sampled_from(["", " ", "-1", "1.5", "TRAIN", "x"]), st.text(max_size=6))


@st.composite
def manifest_row(draw, columns: list[str]) -> list[str]:
    """One row's cells; each cell valid but for about one in ten."""
    start = draw(st.integers(0, 5))
    good = {"path": good_path, "start": st.just(str(start))}
    good["end"] = st.integers(start + 1, start + 5).map(str)
    bad = {"path": st.one_of(bad_path, st.text(max_size=6))}
    return [
        draw(
            bad.get(c, bad_cell) if draw(st.integers(0, 9)) == 0 else good.get(c, good_cells.get(c))
        )
        for c in columns
    ]


@st.composite
def manifest(draw) -> str:
    """A manifest's text: usually path,label and some optional columns, in any order, written
    with proper, full, no or broken quoting (rows short or long by a field)."""
    columns = ["path", "label"][: draw(st.sampled_from([2, 2, 2, 2, 1, 0]))]
    columns += draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    columns = draw(st.permutations(columns))
    rows = draw(st.lists(manifest_row(columns), max_size=6))
    style = draw(st.sampled_from(["minimal", "all", "naive", "ragged"]))
    if style == "naive":  # no quoting at all: commas and quotes in cells break the row
        lines = [",".join(columns)] + [",".join(row) for row in rows]
        return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))
    if style == "ragged":
        for row in rows:
            row.extend(draw(st.lists(bad_cell, max_size=1)))
            del row[len(row) - draw(st.integers(0, 1)) :]
    stream = io.StringIO()
    writer = csv.writer(stream, quoting=csv.QUOTE_MINIMAL if style != "all" else csv.QUOTE_ALL)
    writer.writerow(columns)
    writer.writerows(rows)
    return stream.getvalue()


def data_rows(text: str) -> int | None:
    """Non-blank rows after the header as Python's strict CSV reader sees them; None if it can't."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return None
    return sum(1 for row in rows[1:] if row)


@SETTINGS
@given(manifest())
def test_csv_manifest_gives_one_row_per_data_row_or_an_error(text):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "manifest.csv").write_text(text, encoding="utf-8", newline="")
        try:
            records = load_records("csv", root)
        except DatasetError as error:
            assert "manifest.csv" in str(error) or str(root) in str(error)
            return
        expected = data_rows(text)
        assert expected is not None
        assert len(records.frame) == expected
        assert records.frame["clip_id"].is_unique
        assert all(path.startswith(str(root) + "/") for path in records.frame["path"])


@SETTINGS
@given(st.text(max_size=120))
def test_csv_adapter_on_random_text_never_raises_anything_else(text):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "manifest.csv").write_text("path,label\n" + text, encoding="utf-8", newline="")
        try:
            records = load_records("csv", root)
        except DatasetError:
            return
        assert len(records.frame) == data_rows("path,label\n" + text)
