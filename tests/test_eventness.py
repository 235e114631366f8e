"""Stage-1 eventness methods on a synthetic AVE-like fixture, the registry, and `quality`.

The fixture: 40 clips x 10 s, one event class per clip spanning 2-6 s. Event seconds carry
+2 log-energy in the log-mel-mean columns plus a class pattern (zero-mean over those columns),
and the clip's visual rows carry the class's visual pattern during the event; every value gets
Gaussian noise (NOISY: sd 1, CLEAN: sd 0.05) and each clip a random gain. Train and held-out
fixtures are different clips drawn with the same class patterns.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score

from avgate.config import declared
from avgate.declare import ConfigError, param
from avgate.eventness import (
    METHODS,
    EventnessMethod,
    SecondsData,
    build,
    quality,
    register,
)
from avgate.eventness.data import clip_rows

CLASSES = ("bell", "car", "dog", "speech")
MEL, SPREAD, VISUAL = 8, 8, 8  # audio rows: log-mel means then spreads, as `logmel` lays them out
NOISY, CLEAN = 1.0, 0.05
OPTIONS = {"energy": {"columns": [0, MEL]}}  # a method missing here runs on its defaults
_patterns = np.random.default_rng(0)
AUDIO_PATTERNS = _patterns.normal(size=(len(CLASSES), MEL))
AUDIO_PATTERNS -= AUDIO_PATTERNS.mean(axis=1, keepdims=True)  # the class leaves energy alone
VISUAL_PATTERNS = 1.5 * _patterns.normal(size=(len(CLASSES), VISUAL))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@functools.cache
def seconds_data(seed: int, noise: float, n_clips: int = 40, length: int = 10) -> SecondsData:
    """The fixture of the module docstring."""
    rng = np.random.default_rng(seed)
    ids, audio, visual, labels = [], [], [], []
    t = np.arange(length)
    for clip in range(n_clips):
        c, span = rng.integers(len(CLASSES)), rng.integers(2, 7)
        start = rng.integers(0, length - span + 1)
        event = ((t >= start) & (t < start + span))[:, None]
        gain = rng.normal(0, 0.5)
        mel = gain + noise * rng.normal(size=(length, MEL)) + event * (2.0 + AUDIO_PATTERNS[c])
        spread = noise * rng.normal(size=(length, SPREAD)) + event * 0.5 * AUDIO_PATTERNS[c]
        visual.append(noise * rng.normal(size=(length, VISUAL)) + event * VISUAL_PATTERNS[c])
        audio.append(np.hstack([mel, spread]))
        ids += [f"clip{clip:02d}"] * length
        labels += [CLASSES[c] if e else "background" for e in event[:, 0]]
    return SecondsData(
        clip_ids=np.array(ids),
        seconds=np.tile(t, n_clips),
        audio=np.vstack(audio).astype(np.float32),
        visual=np.vstack(visual).astype(np.float32),
        labels=np.array(labels),
    )


def train(noise: float) -> SecondsData:
    return seconds_data(1, noise)


def held(noise: float) -> SecondsData:
    return seconds_data(2, noise)


@functools.cache
def fitted(name: str, noise: float, run: int = 0) -> tuple[EventnessMethod, np.ndarray]:
    """A method fitted on the train fixture and its scores on the held-out one; `run` tells two
    independent fits apart."""
    method = build(name, **OPTIONS.get(name, {}))
    method.fit(train(noise))
    return method, method.score(held(noise))


# --- the contract, for every registered method ----------------------------------------------

EVERY_METHOD = pytest.mark.parametrize("name", sorted(METHODS))


@EVERY_METHOD
def test_scores_are_one_finite_float_per_row_and_repeat_bit_for_bit(name):
    _, scores = fitted(name, NOISY)
    assert scores.shape == (len(held(NOISY).clip_ids),)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all()
    assert np.array_equal(scores, fitted(name, NOISY, run=1)[1])  # a second fit, same seed


@EVERY_METHOD
def test_identity_is_plain_json_names_the_method_and_outlives_fitting(name):
    identity = build(name, **OPTIONS.get(name, {})).identity()
    assert identity["method"] == name
    assert json.loads(json.dumps(identity)) == identity
    assert fitted(name, NOISY)[0].identity() == identity
    defaults = dataclasses.asdict(METHODS[name].options_type())
    assert build(name).identity() == {"method": name, **defaults}


@EVERY_METHOD
def test_on_clean_data_every_event_second_outranks_the_clips_background(name):
    _, scores = fitted(name, CLEAN)
    events = held(CLEAN).events()
    for rows in clip_rows(held(CLEAN).clip_ids, held(CLEAN).seconds):
        assert scores[rows][events[rows]].min() > scores[rows][~events[rows]].max()


@EVERY_METHOD
def test_auc_on_the_noisy_fixture_is_above_0_8(name):
    _, scores = fitted(name, NOISY)
    assert (
        quality(scores, held(NOISY).labels, held(NOISY).clip_ids, held(NOISY).seconds)["auc"] > 0.8
    )


@EVERY_METHOD
def test_needs_visual_says_whether_scores_read_the_visual_rows(name):
    method, scores = fitted(name, NOISY)
    audio_only = dataclasses.replace(held(NOISY), visual=None)
    if METHODS[name].needs_visual:
        with pytest.raises(ValueError, match="no visual features"):
            method.score(audio_only)
    else:
        assert np.array_equal(method.score(audio_only), scores)


@EVERY_METHOD
def test_fitting_leaves_the_callers_random_state_alone(name):
    small = seconds_data(3, NOISY, n_clips=6)
    before = torch.get_rng_state()
    build(name, **OPTIONS.get(name, {})).fit(small)
    assert torch.equal(torch.get_rng_state(), before)


@EVERY_METHOD
def test_options_are_declared_params_whose_defaults_keep_their_rules(name):
    options = METHODS[name].options_type()
    for item in declared(METHODS[name].options_type):
        assert item.spec.meaning
        value = getattr(options, item.path[-1])
        for rule in item.spec.rules:
            assert all(rule.ok(v) for v in (value if rule.each else [value])), item.key


# --- the registry ---------------------------------------------------------------------------


@pytest.fixture
def registry():
    saved = dict(METHODS)
    yield METHODS
    METHODS.clear()
    METHODS.update(saved)


@dataclasses.dataclass(frozen=True)
class ConstantOptions:
    value: float = param(0.5, "the score of every second")


class Constant(EventnessMethod):
    """A method that lives outside the package."""

    options_type = ConstantOptions

    def fit(self, train: SecondsData) -> None:
        """Nothing to learn."""

    def score(self, data: SecondsData) -> np.ndarray:
        return np.full(len(data.clip_ids), self.options.value)


def test_a_method_registered_outside_the_package_is_built_by_name(registry):
    register("constant")(Constant)
    method = build("constant", value=2.0)
    assert isinstance(method, Constant) and method.name == "constant"
    assert method.identity() == {"method": "constant", "value": 2.0}
    assert method.score(held(NOISY)).tolist() == [2.0] * len(held(NOISY).clip_ids)


def test_registering_a_taken_name_or_a_class_without_options_fails(registry):
    with pytest.raises(ValueError, match="'energy' is registered twice"):
        register("energy")(Constant)

    class NoOptions(Constant):
        options_type = dict

    with pytest.raises(TypeError, match="options_type must be a dataclass"):
        register("no_options")(NoOptions)
    assert "no_options" not in METHODS


def test_an_unknown_method_names_the_key_and_the_known_methods():
    with pytest.raises(ConfigError) as error:
        build("loudness")
    message = str(error.value)
    assert "eventness.method" in message and "'loudness'" in message
    assert all(name in message for name in METHODS)


def test_an_unknown_option_names_the_section_and_its_keys():
    with pytest.raises(ConfigError, match=r"\['colums'\] in eventness.energy; known: \['columns'"):
        build("energy", colums=[0, 8])


# --- the methods' own refusals --------------------------------------------------------------


def test_energy_refuses_columns_past_the_audio_rows():
    with pytest.raises(ValueError, match=r"\[0, 99\] reach past the 16 audio feature columns"):
        build("energy", columns=[0, 99]).score(held(NOISY))


@pytest.mark.parametrize("name", ["audio_head", "av_agreement", "mil"])
def test_trained_methods_need_labels_and_a_fit(name):
    method = build(name)
    with pytest.raises(RuntimeError, match="call fit before score"):
        method.score(held(NOISY))
    with pytest.raises(ValueError, match="carry no labels"):
        method.fit(dataclasses.replace(train(NOISY), labels=None))


def test_av_agreement_refuses_more_components_than_features():
    with pytest.raises(ValueError, match="components 9 exceeds 8"):
        build("av_agreement", components=9).fit(train(NOISY))


def test_seconds_data_refuses_bad_rows():
    data = held(NOISY)
    with pytest.raises(ValueError, match="labels has 3 rows, clip_ids 400"):
        dataclasses.replace(data, labels=data.labels[:3])
    audio = data.audio.copy()
    audio[12, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf in 1 rows, the first of clip 'clip01' sec"):
        dataclasses.replace(data, audio=audio)
    seconds = data.seconds.copy()
    seconds[1] = 0
    with pytest.raises(ValueError, match="clip 'clip00' second 0 appears more than once"):
        dataclasses.replace(data, seconds=seconds)


# --- quality --------------------------------------------------------------------------------


def random_rows(seed: int) -> tuple[np.ndarray, ...]:
    """Shuffled rows of 30 clips of 3-8 s, some without events, with many tied scores."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 9, size=30)
    clip_ids = np.repeat([f"c{i}" for i in range(30)], lengths)
    seconds = np.concatenate([np.arange(n) for n in lengths])
    labels = np.where(rng.random(len(clip_ids)) < 0.3, "dog", "background")
    labels[clip_ids == "c0"] = "background"  # one clip without an event second
    scores = rng.integers(0, 5, size=len(clip_ids)) + (labels == "dog")
    order = rng.permutation(len(clip_ids))
    return scores[order].astype(float), labels[order], clip_ids[order], seconds[order]


@pytest.mark.parametrize("seed", range(5))
def test_auc_is_the_mann_whitney_probability_and_sklearns(seed):
    scores, labels, clip_ids, seconds = random_rows(seed)
    events = labels != "background"
    u = mannwhitneyu(scores[events], scores[~events]).statistic
    auc = quality(scores, labels, clip_ids, seconds)["auc"]
    assert auc == pytest.approx(u / (events.sum() * (~events).sum()), abs=1e-12)
    assert auc == pytest.approx(roc_auc_score(events, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_hit_rates_count_the_clips_whose_top_seconds_hold_an_event(seed):
    scores, labels, clip_ids, seconds = random_rows(seed)
    top1, topk = [], []
    for clip in sorted(set(clip_ids)):
        rows = sorted(np.flatnonzero(clip_ids == clip), key=lambda i: (-scores[i], seconds[i]))
        is_event = [labels[i] != "background" for i in rows]
        if any(is_event):
            top1.append(is_event[0])
            topk.append(any(is_event[: sum(is_event)]))
    result = quality(scores, labels, clip_ids, seconds)
    assert result["clips"] == len(top1) < 30  # c0 and clips that drew no event
    assert result["top1_hit_rate"] == pytest.approx(np.mean(top1))
    assert result["topk_hit_rate"] == pytest.approx(np.mean(topk))


def test_quality_without_events_has_no_auc_and_no_hit_rates():
    result = quality(
        np.zeros(3), np.array(["background"] * 3), np.array(list("aab")), np.array([0, 1, 0])
    )
    assert result == {"auc": None, "top1_hit_rate": None, "topk_hit_rate": None, "clips": 0}
