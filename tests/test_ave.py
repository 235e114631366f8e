import io

import pandas as pd
import pytest

from avgate.datasets import DatasetError, ave


def parse(text: str) -> pd.DataFrame:
    return ave.read_annotations(io.StringIO(text), "Annotations.txt")


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
    with pytest.raises(ave.AnnotationError, match="Annotations.txt:2: StartTime must be a whole"):
        parse("x&a&good&0&1\nCategory&VideoID&Quality&StartTime&EndTime\n")


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
    ("text", "message"),
    [
        ("Church bell&a&good&2\n", "Annotations.txt:1: expected 5 '&'-separated fields"),
        (
            "x&a&good&1&2&3\n",
            "Annotations.txt:1: expected 5 '&'-separated fields "
            "(Category&VideoID&Quality&StartTime&EndTime), got 6",
        ),
        (
            "x&a&good&1&2\nChurch bell&a&good&two&7\n",
            "Annotations.txt:2: StartTime must be a whole",
        ),
        ("x&a&good&1&7.5\n", "Annotations.txt:1: EndTime must be a whole number, got '7.5'"),
        ("x&a&good&-1&2\n", "Annotations.txt:1: StartTime must lie in [0, 2147483647], got -1"),
        ("x&a&good&0&99999999999\n", "Annotations.txt:1: EndTime must lie in [0, 2147483647]"),
        ("x&a&good&7&2\n", "Annotations.txt:1: need StartTime < EndTime, got 7, 2"),
        ("x&a&good&2&2\n", "Annotations.txt:1: need StartTime < EndTime, got 2, 2"),
        ("&a&good&1&2\n", "Annotations.txt:1: empty Category or VideoID"),
        ("x& &good&1&2\n", "Annotations.txt:1: empty Category or VideoID"),
        ("x&../a&good&1&2\n", "Annotations.txt:1: VideoID '../a' must be a plain file name"),
    ],
)
def test_bad_lines_name_file_and_line(text, message):
    with pytest.raises(ave.AnnotationError) as error:
        parse(text)
    assert message in str(error.value)


def test_load_reads_groups_or_falls_back_to_one_group_per_video(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\n")
    records = ave.load(tmp_path)
    assert records.frame["group"].tolist() == ["v1", "v2"]
    assert records.frame["path"].tolist() == [str(tmp_path / "v1.mp4"), str(tmp_path / "v2.mp4")]
    assert records.warnings == [f"{tmp_path}: no groups.csv, so each video is its own group"]
    (tmp_path / "groups.csv").write_text("video_id,group\nv1,ch0\nv2,ch0\n")
    records = ave.load(tmp_path)
    assert records.frame["group"].tolist() == ["ch0", "ch0"]
    assert records.warnings == []


def test_group_table_must_cover_every_video(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\n")
    (tmp_path / "groups.csv").write_text("video_id,group\nv1,ch0\n")
    with pytest.raises(ave.AnnotationError, match=r"no group for VideoID\(s\) \['v2'\]"):
        ave.load(tmp_path)


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
        ave.load(tmp_path)
    assert message in str(error.value)


def test_split_files_fill_split_and_entries_without_annotation_warn(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\nx&v2&good&0&1\n")
    (tmp_path / "trainSet.txt").write_text("x&v1&good&0&2\nz&v9&good&0&2\n")
    (tmp_path / "testSet.txt").write_text("y&v2&good&1&3\n")
    records = ave.load(tmp_path)
    assert records.frame["clip_id"].tolist() == ["v1", "v2", "v2#2"]
    assert records.frame["split"].tolist() == ["train", "test", "test"]
    assert f"{tmp_path / 'trainSet.txt'}: 1 VideoID(s) not in Annotations.txt" in "".join(
        records.warnings
    )


def test_missing_annotations_file_is_named(tmp_path):
    with pytest.raises(ave.AnnotationError, match="Annotations.txt: not found"):
        ave.load(tmp_path)


def test_a_line_that_is_not_valid_unicode_is_refused_with_its_line_number():
    with pytest.raises(ave.AnnotationError, match=r"Annotations.txt:2: not valid Unicode text"):
        parse("x&a&good&0&1\nx&\ud800&good&0&1\n")
