import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avgate.datasets import DatasetError, Records, check_sections, load_records
from avgate.datasets import formats as format_names
from avgate.datasets.checks import check_records, make_records
from avgate.declare import ConfigError
from tests import formats

FSDD = Path("/work/shared/data/fsdd")


def load_unchanged(fmt: str, root: Path, **options) -> Records:
    """load_records, asserting that nothing under `root` changed."""
    before = formats.snapshot(root)
    records = load_records(fmt, root, **options)
    assert formats.snapshot(root) == before
    return records


def refused(fmt: str, root: Path, *fragments: str, **options) -> str:
    """load_records must raise DatasetError naming every fragment and leave `root` as it was."""
    before = formats.snapshot(root) if root.exists() else None
    with pytest.raises(DatasetError) as error:
        load_records(fmt, root, **options)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message
    assert (formats.snapshot(root) if root.exists() else None) == before
    return message


@pytest.fixture(scope="module")
def ave_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("ave") / "ave"
    return root, formats.write_ave(root)


@pytest.fixture
def ave_root(tmp_path: Path, ave_template: tuple[Path, pd.DataFrame]) -> Path:
    """A copy of the AVE fixture to spoil."""
    root = tmp_path / "ave"
    shutil.copytree(ave_template[0], root)
    return root


# Each adapter on its fixture


def test_the_built_in_formats_are_registered():
    assert format_names() == ["ave", "csv", "esc50", "folder", "fsdd"]


def test_ave(ave_template):
    root, expected = ave_template
    records = load_unchanged("ave", root)
    pd.testing.assert_frame_equal(records.frame, expected)
    assert records.frame.columns.tolist() == [
        "clip_id", "path", "label", "group", "start_s", "end_s", "split",
    ]  # fmt: skip
    assert records.warnings == []
    assert set(records.frame["split"]) == {"train", "val", "test"}
    assert records.frame["label"].nunique() == 6


def test_ave_without_groups_or_splits(ave_root):
    for name in ("groups.csv", "trainSet.txt", "valSet.txt", "testSet.txt"):
        (ave_root / name).unlink()
    records = load_unchanged("ave", ave_root)
    assert "split" not in records.frame
    assert records.frame["group"].tolist() == records.frame["clip_id"].tolist()
    assert records.warnings == [f"{ave_root}: no groups.csv, so each video is its own group"]


def test_ave_video_annotated_twice_gives_numbered_clips_and_a_warning(ave_root):
    annotations = ave_root / "Annotations.txt"
    repeat = annotations.read_text().splitlines()[5]
    with open(annotations, "a") as stream:
        stream.write(f"bell&v0003&good&0&1\nbell&v0003&good&0&1\nchirp&v0007&good&1&2\n{repeat}\n")
    records = load_unchanged("ave", ave_root)
    frame = records.frame.set_index("clip_id")
    assert len(frame) == 38
    assert frame.loc["v0003#2", ["label", "start_s", "end_s"]].tolist() == ["bell", 0, 1]
    for video_id in ("v0003", "v0007"):
        twins = frame.loc[[video_id, f"{video_id}#2"]]
        assert twins["path"].nunique() == twins["group"].nunique() == twins["split"].nunique() == 1
    assert len(records.warnings) == 2
    assert "'v0003' is annotated 2 different ways" in records.warnings[0]
    assert "'v0007' is annotated 2 different ways" in records.warnings[1]


def test_esc50(tmp_path):
    expected = formats.write_esc50(tmp_path)
    records = load_unchanged("esc50", tmp_path)
    pd.testing.assert_frame_equal(records.frame, expected)
    assert records.frame.columns.tolist() == ["clip_id", "path", "label", "group", "fold"]
    assert records.frame.loc[0, "clip_id"] == "1-100000-A-0"
    assert sorted(records.frame["fold"].unique()) == [1, 2, 3, 4, 5]
    assert records.frame.groupby("label")["group"].nunique().tolist() == [6, 6, 6]
    assert records.warnings == []


def test_fsdd(tmp_path):
    expected = formats.write_fsdd(tmp_path)
    records = load_unchanged("fsdd", tmp_path)
    pd.testing.assert_frame_equal(records.frame, expected)
    assert records.frame.loc[0, ["clip_id", "label", "group"]].tolist() == [
        "0_alice_0",
        "0",
        "alice",
    ]
    assert records.warnings == []


@pytest.mark.skipif(not FSDD.is_dir(), reason=f"the FSDD snapshot is not at {FSDD}")
def test_fsdd_real_snapshot():
    records = load_unchanged("fsdd", FSDD)
    frame = records.frame
    assert len(frame) == 3000
    assert frame["group"].nunique() == 6
    assert sorted(frame["label"].unique()) == [str(d) for d in range(10)]
    assert frame["clip_id"].is_unique and frame["clip_id"].is_monotonic_increasing
    assert frame["path"].map(os.path.exists).all()
    assert records.warnings == []


def test_folder_with_group_pattern(tmp_path):
    expected = formats.write_folder(tmp_path)
    records = load_unchanged("folder", tmp_path, group_pattern=formats.FOLDER_PATTERN)
    pd.testing.assert_frame_equal(records.frame, expected)
    assert "dog/alice_1" in set(records.frame["clip_id"])
    assert records.warnings == []


def test_folder_first_capture_group_when_unnamed(tmp_path):
    formats.write_folder(tmp_path)
    records = load_records("folder", tmp_path, group_pattern=r"_(\d)\.")
    assert sorted(records.frame["group"].unique()) == ["0", "1"]


def test_folder_without_pattern_makes_each_file_its_group_and_warns(tmp_path):
    formats.write_folder(tmp_path)
    records = load_unchanged("folder", tmp_path)
    assert records.frame["group"].tolist() == records.frame["clip_id"].tolist()
    assert len(records.warnings) == 1 and "no group_pattern" in records.warnings[0]
    assert "data.folder.group_pattern" in records.warnings[0]
    assert load_records("folder", tmp_path, group_pattern="").warnings == records.warnings


def test_folder_deeper_files_keep_the_top_folder_as_label_and_links_inside_are_not_walked(
    tmp_path,
):
    formats.write_tone(tmp_path / "dog/park/alice_0.wav", 300.0)
    formats.write_tone(tmp_path / "cat/bob_0.mp3.wav", 400.0)
    (tmp_path / "dog/again").symlink_to(tmp_path / "dog/park")
    records = load_unchanged("folder", tmp_path, group_pattern=formats.FOLDER_PATTERN)
    assert records.frame[["clip_id", "label", "group"]].to_numpy().tolist() == [
        ["cat/bob_0.mp3", "cat", "bob"],
        ["dog/park/alice_0", "dog", "alice"],
    ]


def test_csv_with_every_column(tmp_path):
    expected = formats.write_csv(tmp_path)
    records = load_unchanged("csv", tmp_path)
    pd.testing.assert_frame_equal(records.frame, expected)
    assert records.frame.columns.tolist() == [
        "clip_id", "path", "label", "group", "start_s", "end_s", "split",
    ]  # fmt: skip
    assert records.warnings == []


def test_csv_path_and_label_only_warns_about_groups(tmp_path):
    expected = formats.write_csv(tmp_path, name="list.csv", group=False, split=False, span=False)
    records = load_unchanged("csv", tmp_path, manifest="list.csv")
    pd.testing.assert_frame_equal(records.frame, expected)
    assert records.frame.columns.tolist() == ["clip_id", "path", "label", "group"]
    assert len(records.warnings) == 1 and "no group column" in records.warnings[0]


def test_csv_extra_columns_are_named_in_a_warning(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,speaker note,label,group\na.wav,x,dog,g\n")
    records = load_records("csv", tmp_path)
    assert records.warnings == [
        f"{tmp_path / 'manifest.csv'}: column(s) ['speaker note'] are not used"
    ]


def test_missing_files_pass_and_symlinks_inside_root_stay_unresolved(tmp_path):
    formats.write_tone(tmp_path / "real" / "a.wav", 440.0)
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    (tmp_path / "manifest.csv").write_text("path,label,group\nalias/a.wav,dog,g\ngone.wav,cat,g\n")
    records = load_unchanged("csv", tmp_path)
    assert records.frame["path"].tolist() == [
        str(tmp_path / "alias/a.wav"),
        str(tmp_path / "gone.wav"),
    ]


def test_an_option_of_another_format_is_reported_as_ignored():
    sections = {"fsdd": {}, "folder": {"group_pattern": "(x)"}, "csv": {"manifest": "a.csv"}}
    assert check_sections("fsdd", sections) == [
        "data.csv.manifest 'a.csv' is ignored: it applies to data.format csv, not fsdd",
        "data.folder.group_pattern '(x)' is ignored: it applies to data.format folder, not fsdd",
    ]
    assert check_sections("folder", sections) == [
        "data.csv.manifest 'a.csv' is ignored: it applies to data.format csv, not folder"
    ]
    defaults = {"folder": {"group_pattern": ""}, "csv": {"manifest": "manifest.csv"}, "ave": {}}
    assert check_sections("ave", defaults) == []


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"folders": {}}, "data.folders is the options section of no dataset format; known"),
        ({"folder": {"pattern": "(x)"}}, "unknown key(s) ['pattern'] in data.folder"),
        ({"folder": {"group_pattern": "no_group"}}, "data.folder.group_pattern must be empty"),
        ({"csv": {"manifest": 3}}, "data.csv.manifest must be a string, got 3"),
        ({"ave": {"group_pattern": "(x)"}}, "unknown key(s) ['group_pattern'] in data.ave"),
    ],
)
def test_a_typo_in_any_format_section_names_the_key(sections, message):
    with pytest.raises(ConfigError) as error:
        check_sections("fsdd", sections)
    assert str(error.value).startswith("params.yaml: ") and message in str(error.value)


# Refusals: each names the file (and line) and leaves the dataset untouched


def test_unknown_format_names_the_key_and_lists_the_formats(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_records("mp3s", tmp_path)
    message = str(error.value)
    assert "data.format names unknown dataset format 'mp3s'" in message
    assert "['ave', 'csv', 'esc50', 'folder', 'fsdd']" in message
    with pytest.raises(ConfigError, match="data.format names unknown"):
        check_sections("mp3s", {})


def test_an_option_the_format_does_not_take_names_its_section(tmp_path):
    formats.write_fsdd(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['group_pattern'\] in data.fsdd"):
        load_records("fsdd", tmp_path, group_pattern="(x)")


def test_missing_root(tmp_path):
    refused("fsdd", tmp_path / "nowhere", f"{tmp_path / 'nowhere'}: no such folder", "recordings/")


@pytest.mark.parametrize(
    ("fmt", "setup", "layout"),
    [
        ("folder", lambda root: (root / "README.txt").write_text("x"), "<label>/<file>"),
        ("csv", lambda root: (root / "manifest.csv").write_text("path,label\n\n"), "path,label"),
        ("fsdd", lambda root: (root / "recordings").mkdir(), "recordings/{digit}_"),
        ("ave", lambda root: (root / "Annotations.txt").write_text(""), "Annotations.txt ("),
    ],
)
def test_zero_clips_names_root_and_layout(tmp_path, fmt, setup, layout):
    setup(tmp_path)
    refused(fmt, tmp_path, f"{tmp_path}: no clips found; expected", layout)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"x&id&good&0&0", "need StartTime < EndTime, got 0, 0"),
        (b"bell&v0001&good&3&1", "need StartTime < EndTime, got 3, 1"),
        (b"caf\xe9&v0001&good&0&1", "not valid UTF-8 text"),
        (b"bell&../v0001&good&0&1", "VideoID '../v0001' must be a plain file name"),
    ],
)
def test_ave_bad_line_is_left_out_with_its_number_and_every_other_line_kept(
    ave_root, ave_template, line, reason
):
    with open(ave_root / "Annotations.txt", "ab") as stream:
        stream.write(line + b"\n")
    records = load_unchanged("ave", ave_root)
    assert records.frame["clip_id"].tolist() == ave_template[1]["clip_id"].tolist()
    [rejected] = records.rejected
    assert (rejected.file, rejected.line) == (str(ave_root / "Annotations.txt"), 38)
    assert reason in rejected.reason


def test_ave_missing_annotations(ave_root):
    (ave_root / "Annotations.txt").unlink()
    refused("ave", ave_root, f"{ave_root / 'Annotations.txt'}: not found")


def test_ave_clip_in_no_split_file(ave_root):
    lines = (ave_root / "valSet.txt").read_text().splitlines()
    (ave_root / "valSet.txt").write_text("\n".join(lines[1:]) + "\n")
    video_id = lines[0].split("&")[1]
    refused("ave", ave_root, f"['{video_id}']", "in none of", "valSet.txt")


def test_ave_clip_in_two_split_files(ave_root):
    line = (ave_root / "valSet.txt").read_text().splitlines()[0]
    with open(ave_root / "testSet.txt", "a") as stream:
        stream.write(line + "\n")
    video_id = line.split("&")[1]
    refused("ave", ave_root, f"'{video_id}': ['valSet.txt', 'testSet.txt']", "exactly one")


def test_ave_bad_split_file_line_is_left_out(ave_root):
    with open(ave_root / "trainSet.txt", "a") as stream:
        stream.write("bell&v0001&good\n")
    [rejected] = load_unchanged("ave", ave_root).rejected
    assert rejected.file == str(ave_root / "trainSet.txt")
    assert "expected 5 '&'-separated fields" in rejected.reason


def test_ave_groups_missing_a_video(ave_root):
    lines = (ave_root / "groups.csv").read_text().splitlines()
    (ave_root / "groups.csv").write_text("\n".join(lines[:-1]) + "\n")
    refused("ave", ave_root, f"{ave_root / 'groups.csv'}: no group for VideoID(s) ['v0035']")


def test_esc50_missing_columns(tmp_path):
    formats.write_esc50(tmp_path)
    meta = tmp_path / "meta/esc50.csv"
    text = meta.read_text().replace("category,esc10,src_file", "class,esc10,source")
    meta.write_text(text)
    refused("esc50", tmp_path, f"{meta}: missing column(s) ['category', 'src_file']")


def test_esc50_missing_meta(tmp_path):
    formats.write_esc50(tmp_path)
    (tmp_path / "meta/esc50.csv").unlink()
    refused("esc50", tmp_path, "meta/esc50.csv: not found", "audio/<filename>")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("x.wav,one,0,dog,False,1,A", ":38: fold must be a whole number, got 'one'"),
        ("../x.wav,1,0,dog,False,1,A", ":38: '../x.wav' contains '..'"),
        ("/tmp/x.wav,1,0,dog,False,1,A", ":38: '/tmp/x.wav' is absolute"),
        (",1,0,dog,False,1,A", ":38: empty path"),
        ("x.wav,1,0,dog,False,1", ":38: expected 7 fields"),
    ],
)
def test_esc50_bad_rows(tmp_path, row, message):
    formats.write_esc50(tmp_path)
    with open(tmp_path / "meta/esc50.csv", "a") as stream:
        stream.write(row + "\n")
    refused("esc50", tmp_path, f"{tmp_path / 'meta/esc50.csv'}{message}")


def test_esc50_empty_category_names_the_file(tmp_path):
    formats.write_esc50(tmp_path)
    with open(tmp_path / "meta/esc50.csv", "a") as stream:
        stream.write("9-1-A-0.wav,1,0,,False,1,A\n")
    refused("esc50", tmp_path, "1 clip(s) have no label", str(tmp_path / "audio/9-1-A-0.wav"))


def test_fsdd_badly_named_wav(tmp_path):
    formats.write_fsdd(tmp_path)
    formats.write_tone(tmp_path / "recordings/jackson_3.wav", 300.0)
    (tmp_path / "recordings/notes.txt").write_text("ignored")
    refused("fsdd", tmp_path, f"{tmp_path / 'recordings/jackson_3.wav'}: not named", "rename")


def test_fsdd_without_recordings_folder(tmp_path):
    formats.write_fsdd(tmp_path)
    shutil.rmtree(tmp_path / "recordings")
    refused("fsdd", tmp_path, f"{tmp_path / 'recordings'}: not found")


def test_folder_pattern_that_does_not_match(tmp_path):
    formats.write_folder(tmp_path)
    formats.write_tone(tmp_path / "rain/nospeaker.wav", 300.0)
    refused(
        "folder",
        tmp_path,
        f"{tmp_path / 'rain/nospeaker.wav'}: data.folder.group_pattern",
        "'nospeaker.wav'",
        group_pattern=formats.FOLDER_PATTERN,
    )


@pytest.mark.parametrize("pattern", ["([a-z", r"^\w+_"])
def test_folder_unusable_pattern_names_the_key(tmp_path, pattern):
    formats.write_folder(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_records("folder", tmp_path, group_pattern=pattern)
    message = str(error.value)
    assert message.startswith("params.yaml: data.folder.group_pattern must be empty or a regex")
    assert message.endswith(f"got {pattern!r}")


def test_folder_media_outside_a_label_folder(tmp_path):
    formats.write_folder(tmp_path)
    formats.write_tone(tmp_path / "stray.wav", 300.0)
    refused("folder", tmp_path, f"{tmp_path / 'stray.wav'}: media file outside a label folder")


def test_non_utf8_file_name(tmp_path):
    formats.write_folder(tmp_path)
    bad = os.fsdecode(b"caf\xe9_0.wav")
    formats.write_tone(tmp_path / "dog" / bad, 300.0)
    message = refused("folder", tmp_path, "not valid UTF-8", "rename")
    assert ascii(str(tmp_path / "dog" / bad)) in message


def test_non_utf8_name_in_fsdd(tmp_path):
    formats.write_fsdd(tmp_path)
    formats.write_tone(tmp_path / "recordings" / os.fsdecode(b"1_b\xf6b_0.wav"), 300.0)
    refused("fsdd", tmp_path, "1_b\\udcf6b_0.wav'", "not valid UTF-8; rename")


def test_file_symlink_leaving_the_root(tmp_path):
    root = tmp_path / "data"
    formats.write_folder(root)
    formats.write_tone(tmp_path / "elsewhere.wav", 300.0)
    (root / "dog/linked_0.wav").symlink_to(tmp_path / "elsewhere.wav")
    refused("folder", root, f"{root / 'dog/linked_0.wav'}: leaves the dataset root", "symlink")


def test_folder_symlink_leaving_the_root(tmp_path):
    root = tmp_path / "data"
    formats.write_folder(root)
    formats.write_tone(tmp_path / "cats/tom_0.wav", 300.0)
    (root / "cat").symlink_to(tmp_path / "cats")
    refused("folder", root, f"{root / 'cat'}: folder leaves the dataset root", "symlink")


def test_symlink_at_a_higher_level_leaving_the_root(tmp_path):
    root = tmp_path / "data"
    formats.write_csv(root)
    formats.write_tone(tmp_path / "outside/a.wav", 300.0)
    (root / "more").symlink_to(tmp_path / "outside")
    with open(root / "manifest.csv", "a") as stream:
        stream.write("more/a.wav,dog,alice,train,0,1\n")
    refused("csv", root, f"{root / 'more/a.wav'}: leaves the dataset root", "symlink resolving")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (",dog,alice,train,0,1", ":38: empty path"),
        ("../a.wav,dog,alice,train,0,1", ":38: '../a.wav' contains '..'"),
        ("clips/../../a.wav,dog,alice,train,0,1", ":38: 'clips/../../a.wav' contains '..'"),
        ("/etc/a.wav,dog,alice,train,0,1", ":38: '/etc/a.wav' is absolute"),
        ("a.wav,dog,alice,training,0,1", ":38: split 'training' is not one of"),
        ("a.wav,dog,alice,,0,1", ":38: split '' is not one of"),
        ("a.wav,,alice,train,0,1", ":38: empty label for 'a.wav'"),
        ("a.wav,dog, ,train,0,1", ":38: empty group for 'a.wav'"),
        ("a.wav,dog,alice,train,1,x", ":38: end must be a whole number, got 'x'"),
        ("a.wav,dog,alice,train,3,1", ":38: need start < end, got 3, 1"),
        ("a.wav,dog,alice,train,,", ":38: start must be a whole number, got ''"),
        ("a.wav,dog,alice,train,0", ":38: expected 6 fields"),
        ('a.wav,"dog"x,alice,train,0,1', ":38: ',' expected after '\"'"),
    ],
)
def test_csv_bad_rows(tmp_path, row, message):
    formats.write_csv(tmp_path)
    with open(tmp_path / "manifest.csv", "a") as stream:
        stream.write(row + "\n")
    refused("csv", tmp_path, f"{tmp_path / 'manifest.csv'}{message}")


def test_csv_duplicate_clip_ids_name_the_files(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,label,group\na.wav,x,g\nb.wav,x,g\n./a.flac,y,g\n")
    refused("csv", tmp_path, "'a': ", str(tmp_path / "a.wav"), str(tmp_path / "a.flac"), "rename")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,label\na.wav,x\n", ": missing column(s) ['path']"),
        ("path,label,path\na.wav,x,b.wav\n", ": column(s) ['path'] appear twice"),
        ("path,label,start\na.wav,x,0\n", ": has only one of the columns start, end"),
        ("", ": missing column(s) ['path', 'label']"),
    ],
)
def test_csv_bad_header(tmp_path, text, message):
    (tmp_path / "manifest.csv").write_text(text)
    refused("csv", tmp_path, f"{tmp_path / 'manifest.csv'}{message}")


def test_csv_manifest_not_found_or_outside(tmp_path):
    refused("csv", tmp_path, f"{tmp_path / 'list.csv'}: not found", manifest="list.csv")
    for outside in ("../list.csv", "/tmp/list.csv", ""):
        with pytest.raises(ConfigError) as error:
            load_records("csv", tmp_path, manifest=outside)
        assert "data.csv.manifest must be a path relative to data/raw/<name>" in str(error.value)


def test_csv_manifest_not_utf8(tmp_path):
    (tmp_path / "manifest.csv").write_bytes(b"path,label\na.wav,dog\nb.wav,caf\xe9\n")
    refused("csv", tmp_path, f"{tmp_path / 'manifest.csv'}:3: not UTF-8")


def test_nan_or_blank_label_names_the_file(tmp_path):
    frame = pd.DataFrame(
        {
            "clip_id": ["a", "b", "c"],
            "path": [str(tmp_path / f"{c}.wav") for c in "abc"],
            "label": ["dog", np.nan, "  "],
            "group": ["g", "g", "g"],
        }
    )
    with pytest.raises(DatasetError) as error:
        check_records(make_records(frame, []), tmp_path, "layout")
    message = str(error.value)
    assert "2 clip(s) have no label" in message
    assert str(tmp_path / "b.wav") in message and str(tmp_path / "c.wav") in message
