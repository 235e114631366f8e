import io

import pandas as pd
import pytest

from avgate.datasets import ave


def parse(text: str) -> pd.DataFrame:
    return ave.read_annotations(io.StringIO(text), "Annotations.txt")


def test_names_with_commas_spaces_and_leading_dash_ids():
    frame = parse(
        "Category&VideoID&Quality&StartTime&EndTime\n"
        "Male speech, man speaking&-0A9suni5YA&good&0&10\n"
        "Church bell&RUhOCu3LNXM&good&2&7\n"
    )
    assert frame["label"].tolist() == ["Male speech, man speaking", "Church bell"]
    assert frame["clip_id"].tolist() == ["-0A9suni5YA", "RUhOCu3LNXM"]
    assert frame[["start_s", "end_s"]].to_numpy().tolist() == [[0, 10], [2, 7]]


def test_exact_repeat_is_kept_once():
    frame = parse("Church bell&a&good&2&7\nChurch bell&a&good&2&7\n")
    assert len(frame) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Church bell&a&good&2\n", "Annotations.txt:1: expected 5 '&'-separated fields"),
        ("Church bell&a&good&two&7\n", "Annotations.txt:1: StartTime and EndTime must be whole"),
        ("x&a&good&7&2\n", "Annotations.txt:1: need 0 <= StartTime < EndTime"),
        ("&a&good&1&2\n", "Annotations.txt:1: empty Category or VideoID"),
        ("x&a&good&1&2\ny&a&good&1&2\n", "VideoID(s) ['a'] annotated more than once"),
    ],
)
def test_bad_lines_name_file_and_line(text, message):
    with pytest.raises(ave.AnnotationError) as error:
        parse(text)
    assert message in str(error.value)


def test_load_reads_groups_or_falls_back_to_one_group_per_video(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\n")
    frame = ave.load(tmp_path)
    assert frame["group"].tolist() == ["v1", "v2"]
    assert frame["path"].tolist() == [str(tmp_path / "v1.mp4"), str(tmp_path / "v2.mp4")]
    (tmp_path / "groups.csv").write_text("video_id,group\nv1,ch0\nv2,ch0\n")
    assert ave.load(tmp_path)["group"].tolist() == ["ch0", "ch0"]


def test_group_table_must_cover_every_video(tmp_path):
    (tmp_path / "Annotations.txt").write_text("x&v1&good&0&2\ny&v2&good&1&3\n")
    (tmp_path / "groups.csv").write_text("video_id,group\nv1,ch0\n")
    with pytest.raises(ave.AnnotationError, match=r"no group for VideoID\(s\) \['v2'\]"):
        ave.load(tmp_path)


def test_missing_annotations_file_is_named(tmp_path):
    with pytest.raises(ave.AnnotationError, match="Annotations.txt: not found"):
        ave.load(tmp_path)
