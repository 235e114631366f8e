"""Stage-1 eventness: a cheap score per second of how likely an event is, higher = more eventful.

`eventness.method` names a registered `EventnessMethod`; `build(name, **options)` makes one,
`fit(train)` learns from the train split's rows (`SecondsData`), `score(data)` gives one float per
row, and `quality(...)` measures the scores against the per-second labels (ROC AUC, top-k hit
rates). Built in:

- `energy`: the mean of declared audio columns (log-mel means: log-energy), optionally plus its
  rise from the previous second; no training;
- `audio_head`: an MLP on the audio rows predicting each second's label; best event logit minus
  background logit;
- `av_agreement`: cosine of the audio and visual rows in a CCA space learned on train;
- `mil`: a linear audio scorer trained so that a soft maximum over a bag of seconds says whether
  the bag holds an event.

A new method is one module: a frozen options dataclass of `avgate.declare.param` fields, and an
`EventnessMethod` subclass naming it as `options_type`, decorated with `@register("<name>")`, and
one import line below. The contract test in tests/test_eventness.py runs it the day it is
registered.

>>> sorted(METHODS)
['audio_head', 'av_agreement', 'energy', 'mil']
>>> build("energy", columns=[0, 64]).identity()
{'method': 'energy', 'columns': [0, 64], 'onset': False}
"""

from avgate.eventness import audio_head, av_agreement, energy, mil  # noqa: F401 (they register)
from avgate.eventness.base import METHODS, EventnessMethod, build, register
from avgate.eventness.data import BACKGROUND, SecondsData
from avgate.eventness.quality import quality

__all__ = [
    "BACKGROUND",
    "METHODS",
    "EventnessMethod",
    "SecondsData",
    "build",
    "quality",
    "register",
]
