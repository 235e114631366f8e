import io

import pandas as pd
import pytest

from avgate.datasets import DatasetError, Records, ave, load_records


def load(root) -> Records:
    """The records of the AVE dataset at `root`, through the format registry."""
    return load_records("ave", root)


def parse(text: str) -> pd.DataFrame:
    """The kept annotations of `text`, which must have no line left out."""
    frame, rejected = ave.read_annotations(io.StringIO(text), "Annotations.txt")
    assert rejected == []
    return frame


def rejected(text: str) -> list[tuple[int, str]]:
    """(line, reason) of each line of `text` left out."""
    _, left_out = ave.read_annotations(io.StringIO(text), "Annotations.txt")
    assert {r.file for r in left_out} <= {"Annotations.txt"}
    return [(r.line, r.reason) for r in left_out]


def test_names_with_commas_spaces_and_leading_dash_ids():
    frame = parse(
        "\ufeffCategory&VideoID&Quality&StartTime&EndTime\n"
        "Male speech, man speaking&-0A9suni5YA&good&0&10\r\n"
        "\n"
        "Church bell&RUhOCu3LNXM&good&2&7\n"
    )
    assert frame["label"].tolist() == ["Male speech, man speaking", "Church bell"]
    assert frame["clip_id"].tolist() == ["-0A9suni5YA", "RUhOCu3LNXM"]
    assert frame["video_id"].tolist() == frame["clip_id"].tolist()
    assert frame[["start_s", "end_s"]].to_numpy().tolist() == [[0, 10], [2, 7]]


def test_header_only_counts_on_the_first_line():
    [(line, reason)] = rejected("x&a&good&0&1\nCategory&VideoID&Quality&StartTime&EndTime\n")
    assert line == 2 and reason.startswith("StartTime must be a whole")


def test_exact_repeat_is_kept_once():
    frame = parse("Church bell&a&good&2&7\nChurch bell&a&good&2&7\n")
    assert frame["clip_id"].tolist() == ["a"]


def test_distinct_annotations_of_one_video_are_numbered_clips():
    frame = parse("x&a&good&1&2\ny&b&good&0&1\nx&a&good&3&4\ny&a&good&1&2\nx&a&good&3&4\n")
    assert frame["clip_id"].tolist() == ["a", "b", "a#2", "a#3"]
    assert frame["video_id"].tolist() == ["a", "b", "a", "a"]
    assert frame[["start_s", "end_s"]].to_numpy().tolist() == [[1, 2], [0, 1], [3, 4], [1, 2]]


def test_annotation_error_is_a_dataset_error():
    assert issubclass(ave.AnnotationError, DatasetError)
    assert issubclass(DatasetError, ValueError)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("Church bell&a&good&2", "expected 5 '&'-separated fields"),
        (
            "x&a&good&1&2&3",
            "expected 5 '&'-separated fields (Category&VideoID&Quality&StartTime&EndTime), got 6",
        ),
        ("Church bell&a&good&two&7", "StartTime must be a whole"),
        ("x&a&good&1&7.5", "EndTime must be a whole number, got '7.5'"),
        ("x&a&good&-1&2", "StartTime must lie in [0, 2147483647], got -1"),
        ("x&a&good&0&99999999999", "EndTime must lie in [0, 2147483647]"),
        ("x&a&good&7&2", "need StartTime < EndTime, got 7, 2"),
        ("x&a&good&2&2", "need StartTime < EndTime, got 2, 2"),
        ("Church bell&VWi2ENBuTbw&good&0&0", "need StartTime < EndTime, got 0, 0"),
        ("&a&good&1&2", "empty Category or VideoID"),
        ("x& &good&1&2", "empty Category or VideoID"),
        ("x&../a&good&1&2", "VideoID '../a' must be a plain file name"),
        ("x&\ud800&good&0&1", "not valid UTF-8 text"),
    ],
)
def test_a_bad_line_is_left_out_with_its_number_and_reason_and_the_rest_kept(bad, message):
    text = f"Category&VideoID&Quality&StartTime&EndTime\nx&v1&good&0&2\n{bad}\ny&v2&good&1&3\n"
    frame, left_out = ave.read_annotations(io.StringIO(text), "Annotations.txt")
    assert frame["clip_id"].tolist() == ["v1", "v2"]
    [(line, reason)] = [(r.line, r.reason) for r in left_out]
    assert line == 3 and message in reason and reason.endswith(repr(bad))


def test_load_reads_groups_or_falls_back_to_one_group_per_video(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\n")
    records = load(tmp_path)
    assert records.frame["group"].tolist() == ["v1", "v2"]
    assert records.frame["path"].tolist() == [str(tmp_path / "v1.mp4"), str(tmp_path / "v2.mp4")]
    assert records.warnings == [f"{tmp_path}: no groups.csv, so each video is its own group"]
    (tmp_path / "groups.csv").write_text("video_id,group\nv1,ch0\nv2,ch0\n")
    records = load(tmp_path)
    assert records.frame["group"].tolist() == ["ch0", "ch0"]
    assert records.warnings == []


def test_group_table_must_cover_every_video(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\n")
    (tmp_path / "groups.csv").write_text("video_id,group\nv1,ch0\n")
    with pytest.raises(ave.AnnotationError, match=r"no group for VideoID\(s\) \['v2'\]"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("video_id,group\nv1,ch0\nv1,ch1\n", "groups.csv:3: VideoID 'v1' already has group 'ch0'"),
        ("video_id,group\nv1, \n", "groups.csv:2: empty group for VideoID 'v1'"),
        ("video,group\nv1,ch0\n", "groups.csv: missing column(s) ['video_id']"),
    ],
)
def test_bad_group_tables_name_file_and_line(tmp_path, table, message):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\n")
    (tmp_path / "groups.csv").write_text(table)
    with pytest.raises(DatasetError) as error:
        load(tmp_path)
    assert message in str(error.value)


def test_split_files_fill_split_and_entries_without_annotation_warn(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\nx&v2&good&0&1\n")
    (tmp_path / "trainSet.txt").write_text("x&v1&good&0&2\nz&v9&good&0&2\n")
    (tmp_path / "testSet.txt").write_text("y&v2&good&1&3\n")
    records = load(tmp_path)
    assert records.frame["clip_id"].tolist() == ["v1", "v2", "v2#2"]
    assert records.frame["split"].tolist() == ["train", "test", "test"]
    assert f"{tmp_path / 'trainSet.txt'}: 1 VideoID(s) not in Annotations.txt" in "".join(
        records.warnings
    )


def test_missing_annotations_file_is_named(tmp_path):
    with pytest.raises(ave.AnnotationError, match="Annotations.txt: not found"):
        load(tmp_path)


def test_load_keeps_every_valid_line_and_returns_the_others(tmp_path):
    (tmp_path / "Annotations.txt").write_bytes(
        b"x&v1&good&0&2\nx&id&good&0&0\ny&v2&good&1&3\ncaf\xe9&v3&good&0&1\n"
    )
    records = load(tmp_path)
    assert records.frame["clip_id"].tolist() == ["v1", "v2"]
    where = str(tmp_path / "Annotations.txt")
    assert [(r.file, r.line) for r in records.rejected] == [(where, 2), (where, 4)]
    assert "need StartTime < EndTime, got 0, 0" in records.rejected[0].reason
    assert "not valid UTF-8 text" in records.rejected[1].reason


def test_load_refuses_a_file_without_a_usable_line_naming_the_lines(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&id&good&0&0\ny&v2&good\n")
    with pytest.raises(ave.AnnotationError, match="none of its 2 annotation lines") as error:
        load(tmp_path)
    assert "line 1: need StartTime < EndTime" in str(error.value)
    assert "line 2: expected 5" in str(error.value)


def test_bad_lines_of_split_files_are_left_out_too(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\n")
    (tmp_path / "trainSet.txt").write_text("x&v1&good&0&2\nChurch bell&v9&good&0&0\n")
    (tmp_path / "testSet.txt").write_text("y&v2&good&1&3\n")
    records = load(tmp_path)
    assert records.frame["split"].tolist() == ["train", "test"]
    assert [(r.file, r.line) for r in records.rejected] == [(str(tmp_path / "trainSet.txt"), 2)]
