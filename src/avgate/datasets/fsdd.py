"""Free Spoken Digit Dataset: `recordings/{digit}_{speaker}_{index}.wav`.

Label is the digit, group the speaker: every speaker says every digit, so only a split grouped
by speaker keeps a voice out of the test set. Files other than `.wav` (a README) are ignored.

>>> NAME.fullmatch("3_jackson_12").groupdict()
{'digit': '3', 'speaker': 'jackson', 'index': '12'}
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from avgate.datasets.base import DatasetFormat, NoOptions, register
from avgate.datasets.checks import DatasetError, Records, make_records, require_utf8

RECORDINGS = "recordings"
NAME = re.compile(r"(?P<digit>[0-9])_(?P<speaker>[^_]+)_(?P<index>[0-9]+)")


@register("fsdd")
class Fsdd(DatasetFormat):
    """clip_id (the file stem), path, label (the digit), group (the speaker) of each WAV."""

    layout = f"{RECORDINGS}/{{digit}}_{{speaker}}_{{index}}.wav"
    group_fix = "name the files {digit}_{speaker}_{index}.wav after the real speaker"
    options_type = NoOptions

    def load(self, root: Path, options: NoOptions) -> Records:
        folder = root / RECORDINGS
        if not folder.is_dir():
            raise DatasetError(f"{folder}: not found; an fsdd dataset needs {self.layout}")
        rows = []
        for name in sorted(os.listdir(folder)):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() != ".wav" or (folder / name).is_dir():
                continue
            require_utf8(str(folder / name))
            match = NAME.fullmatch(stem)
            if match is None:
                raise DatasetError(
                    f"{folder / name}: not named {{digit}}_{{speaker}}_{{index}}.wav "
                    "(e.g. 3_jackson_12.wav); rename or remove it"
                )
            rows.append((stem, str(folder / name), match["digit"], match["speaker"]))
        frame = pd.DataFrame(rows, columns=["clip_id", "path", "label", "group"])
        return make_records(frame, [])
