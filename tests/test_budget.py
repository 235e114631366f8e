from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avgate import budget
from avgate.budget import Budget, allocate
from avgate.declare import ConfigError

SIZES = [32, 58, 67, 112]
PIXELS = budget.pixel_costs(*SIZES)


def table(**clips: list[float]) -> pd.DataFrame:
    """Scores for clips given as name=[score per second]."""
    rows = [(c, t, s) for c, scores in clips.items() for t, s in enumerate(scores)]
    return pd.DataFrame(rows, columns=["clip_id", "t", "score"])


def anchored(**changes) -> Budget:
    return Budget(**{"policy": "anchored_topk", "k": 2, **changes})


def chosen(allocation: budget.Allocation, clip_id: str) -> list[int]:
    rows = allocation.seconds[allocation.seconds["clip_id"] == clip_id]
    return rows["resolution"].tolist()


def highs(scores: list[float], **changes) -> list[int]:
    """The seconds of one clip that get the high resolution."""
    resolutions = chosen(allocate(table(a=scores), anchored(**changes)), "a")
    return [t for t, r in enumerate(resolutions) if r == 112]


# --- policies on hand-made scores ---------------------------------------------------------------


def test_uniform_gives_every_second_the_uniform_size_and_never_falls_back():
    allocation = allocate(table(a=[0.0, 5.0, 0.0], b=[1.0]), Budget(fallback_std=9.0))
    assert allocation.seconds.to_dict("list") == {
        "clip_id": ["a", "a", "a", "b"],
        "t": [0, 1, 2, 0],
        "resolution": [67, 67, 67, 67],
    }
    assert allocation.fallback.to_dict() == {"a": False, "b": False}
    assert allocation.fallback_used_frac == 0.0
    assert allocation.totals() == {67: 4}


def test_anchored_gives_the_k_most_eventful_seconds_the_high_size():
    allocation = allocate(table(a=[0.1, 0.9, 0.2, 0.8, 0.3], b=[3.0, 2.0, 1.0, 4.0]), anchored())
    assert chosen(allocation, "a") == [32, 112, 32, 112, 32]
    assert chosen(allocation, "b") == [112, 32, 32, 112]
    assert allocation.totals() == {32: 5, 112: 4}
    assert allocation.policy == "anchored_topk"


def test_ties_go_to_the_earlier_second():
    assert highs([0.5, 0.9, 0.5, 0.5]) == [0, 1]
    assert highs([0.2, 0.2, 0.2, 0.2, 0.2]) == [0, 1]
    assert highs([0.2, 0.7, 0.7, 0.7], k=1) == [1]


def test_a_clip_shorter_than_k_is_high_throughout():
    assert highs([0.3], k=3) == [0]
    assert highs([0.3, 0.1], k=3) == [0, 1]
    assert highs([0.3, 0.1], k=1, adjacent=True) == [0, 1]


def test_adjacent_covers_the_neighbours_of_each_anchor():
    assert highs([0, 0, 9, 0, 0, 0, 0, 8, 0, 0], adjacent=True) == [1, 2, 3, 6, 7, 8]


def test_adjacent_windows_at_the_edges_or_overlapping_leave_room_for_the_next_anchor():
    # anchor 0 covers 0 and 1 only, anchor 9 covers 8 and 9: anchor 5 fills the room left
    # with itself and its earlier neighbour
    assert highs([9, 0, 0, 0, 0, 5, 0, 0, 0, 8], adjacent=True) == [0, 1, 4, 5, 8, 9]
    # anchors 4 and 5 share their neighbours: 3..6, then anchor 8 takes itself and second 7
    assert highs([0, 0, 0, 0, 9, 8, 0, 0, 7, 0], adjacent=True) == [3, 4, 5, 6, 7, 8]


def test_shift_moves_the_anchors():
    assert highs([0, 9, 0, 8, 0, 0], shift=1) == [2, 4]
    assert highs([0, 9, 0, 8, 0, 0], shift=-1) == [0, 2]
    assert highs([0, 9, 0, 8, 0, 0], shift=1, k=1, adjacent=True) == [1, 2, 3]


def test_shift_past_the_clip_end_clips_to_the_range_and_fills_the_earliest_seconds():
    # every anchor clips to second 5; the second high goes to the earliest second not reached
    assert highs([0, 9, 0, 8, 0, 0], shift=20) == [0, 5]
    assert highs([0, 9, 0, 8, 0, 0], shift=-20) == [0, 1]
    assert highs([0, 9, 0, 8, 0, 0], shift=20, k=1, adjacent=True) == [0, 4, 5]


def test_allocation_does_not_depend_on_the_row_order():
    scores = table(a=[0.1, 0.9, 0.2, 0.8], b=[0.5, 0.5, 0.1])
    shuffled = scores.sample(frac=1.0, random_state=0)
    first, second = allocate(scores, anchored()), allocate(shuffled, anchored())
    pd.testing.assert_frame_equal(first.seconds, second.seconds)
    pd.testing.assert_series_equal(first.fallback, second.fallback)


# --- fallback -----------------------------------------------------------------------------------


def test_a_flat_clip_falls_back_to_uniform_and_a_peaky_one_does_not():
    scores = table(flat=[0.50, 0.52, 0.49, 0.51], peaky=[0.0, 1.0, 0.0, 0.9])
    allocation = allocate(scores, anchored(fallback_std=0.1))
    assert chosen(allocation, "flat") == [67, 67, 67, 67]
    assert chosen(allocation, "peaky") == [32, 112, 32, 112]
    assert allocation.fallback.to_dict() == {"flat": True, "peaky": False}
    assert allocation.fallback_used_frac == 0.5


def test_fallback_std_zero_never_falls_back_even_on_constant_scores():
    allocation = allocate(table(a=[0.3, 0.3, 0.3], b=[1.0]), anchored(fallback_std=0.0))
    assert allocation.fallback_used_frac == 0.0
    assert chosen(allocation, "a") == [112, 112, 32]


def test_the_fallback_threshold_is_strict_and_uses_the_population_std():
    scores = table(a=[0.0, 1.0])  # population std 0.5 (the sample std would be 0.707)
    assert allocate(scores, anchored(k=1, fallback_std=0.5)).fallback_used_frac == 0.0
    assert allocate(scores, anchored(k=1, fallback_std=0.6)).fallback_used_frac == 1.0


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (pd.DataFrame({"clip_id": ["a"], "score": [0.1]}), r"lack the columns \['t'\]"),
        (table(), "empty"),
        (table(a=[0.1, float("nan")]), "NaN"),
        (table(a=[0.1, float("inf")]), "infinite"),
        (table(a=[0.1, 0.2]).assign(t=[0, 2]), "clip 'a': seconds t must be 0..T-1"),
        (table(a=[0.1, 0.2], b=[0.3, 0.4]).assign(t=[0, 1, 0, 0]), "clip 'b'"),
        (table(a=[0.1, 0.2]).assign(t=[1, 2]), "clip 'a'"),
    ],
)
def test_malformed_scores_are_refused(scores, message):
    with pytest.raises(ValueError, match=message):
        allocate(scores, anchored())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"policy": "random"}, r"budget\.policy must be one of \['anchored_topk', 'uniform'\]"),
        ({"k": 0}, r"budget\.k must be an integer >= 1, got 0"),
        ({"k": 2.5}, r"budget\.k must be an integer >= 1, got 2\.5"),
        ({"k": True}, r"budget\.k must be an integer"),
        ({"adjacent": "yes"}, r"budget\.adjacent must be true/false"),
        ({"shift": 1.0}, r"budget\.shift must be an integer, got 1\.0"),
        ({"fallback_std": -0.1}, r"budget\.fallback_std must be a finite number >= 0"),
        ({"fallback_std": float("nan")}, r"budget\.fallback_std"),
        ({"fallback_std": "0.1"}, r"budget\.fallback_std"),
        ({"low": 0}, r"budget\.low must be an integer >= 1"),
        ({"uniform": 57.7}, r"budget\.uniform must be an integer >= 1"),
        ({"high": 32}, r"budget\.high must be > budget\.low \(32\), got 32"),
    ],
)
def test_budget_params_name_the_key_they_refuse(changes, message):
    with pytest.raises(ConfigError, match=r"^params\.yaml: " + message):
        Budget(**changes)


# --- cost and equal budgets ---------------------------------------------------------------------


def test_cost_prices_each_second_at_its_resolution():
    allocation = allocate(table(a=[0.1, 0.9, 0.2], b=[0.5]), anchored(k=1))
    assert budget.cost(allocation, PIXELS) == 2 * 112**2 + 2 * 32**2
    assert budget.cost(allocation, {32: 4.0, 112: 49.0}) == 2 * 49 + 2 * 4  # tokens


def test_cost_refuses_a_resolution_without_a_price():
    with pytest.raises(ValueError, match=r"no cost per second for the resolutions \[112\]"):
        budget.cost(allocate(table(a=[0.1, 0.9]), anchored(k=1)), {32: 1.0})


def test_budgets_within_one_percent_pass():
    budget.check_equal_budgets(1000.0, 1009.9)
    budget.check_equal_budgets(1000.0, 990.1)
    budget.check_equal_budgets(44890.0, 44800.0)


@pytest.mark.parametrize(("anchored_cost", "gap"), [(1020.0, "+2.00%"), (980.0, "-2.00%")])
def test_budgets_two_percent_apart_fail_naming_both(anchored_cost, gap):
    with pytest.raises(ValueError) as raised:
        budget.check_equal_budgets(1000.0, anchored_cost)
    message = str(raised.value)
    assert f"uniform 1000, anchored {anchored_cost:g}" in message
    assert f"({gap}, more than 1.00%)" in message


def test_a_zero_uniform_budget_is_refused():
    with pytest.raises(ValueError, match="must be > 0"):
        budget.check_equal_budgets(0.0, 0.0)


def test_the_planned_budgets_match_what_allocation_spends_on_ten_second_clips():
    rng = np.random.default_rng(0)
    scores = table(**{f"c{i}": rng.random(10).tolist() for i in range(20)})
    scores.loc[scores["clip_id"] == "c0", "score"] = 0.5  # a flat clip: falls back
    params = anchored(k=3, fallback_std=0.01)
    uniform = budget.cost(allocate(scores, Budget(uniform=67)), PIXELS)
    anchored_cost = budget.cost(allocate(scores, params), PIXELS)
    assert uniform == 20 * budget.planned_cost(Budget(uniform=67), 10, PIXELS) == 897800
    assert anchored_cost == 19 * budget.planned_cost(params, 10, PIXELS) + 10 * 67**2
    budget.check_equal_budgets(uniform, anchored_cost)


def test_uniform_for_finds_the_size_that_matches_the_anchored_budget():
    # T=10, k=3: 3·112² + 7·32² = 44800 ≈ 10·67² = 44890 (-0.20%)
    assert budget.uniform_for(Budget(k=3), 10, SIZES, PIXELS) == 67
    assert budget.uniform_for(Budget(k=1, adjacent=True), 10, SIZES, PIXELS) == 67


def test_uniform_for_lists_the_pairs_that_match_when_none_does_at_this_k():
    # T=10, k=2: 2·112² + 8·32² = 33280, uniform needs 57.7², and 10·58² = 33640 is 1.07% off
    with pytest.raises(ValueError) as raised:
        budget.uniform_for(Budget(k=2), 10, SIZES, PIXELS)
    message = str(raised.value)
    assert "nearest: 58, -1.07%" in message
    assert "(k, size, gap) pairs that do: [(3, 67, -0.002)]" in message


def test_equalising_pairs_skip_k_that_leaves_no_second_low():
    # k=10 would spend 10·112², as uniform at 112 does, but anchors nothing
    assert budget.equalising_pairs(Budget(), 10, [112], PIXELS) == []


def test_a_lower_low_size_equalises_k_2():
    # T=10, k=2, low=16: 2·112² + 8·16² = 27136 ≈ 10·52² = 27040 (+0.36%)
    prices = budget.pixel_costs(16, 52, 58, 112)
    assert budget.equalising_pairs(Budget(low=16), 10, [52, 58], prices) == [(2, 52, 0.0036)]


# --- properties ---------------------------------------------------------------------------------

score_values = st.one_of(st.integers(0, 3).map(float), st.floats(-1e3, 1e3, allow_nan=False))
clips = st.lists(st.lists(score_values, min_size=1, max_size=12), min_size=1, max_size=6)
params = st.builds(
    Budget,
    policy=st.sampled_from(sorted(budget.POLICIES)),
    k=st.integers(1, 5),
    adjacent=st.booleans(),
    shift=st.integers(-14, 14),
    fallback_std=st.sampled_from([0.0, 0.3, 1.0]),
)


@settings(max_examples=150, deadline=None)
@given(clips, params)
def test_every_second_gets_one_resolution_and_the_spend_is_planned(clip_scores, params):
    scores = table(**{f"c{i}": s for i, s in enumerate(clip_scores)})
    allocation = allocate(scores, params)
    pd.testing.assert_frame_equal(allocation.seconds[["clip_id", "t"]], scores[["clip_id", "t"]])
    assert set(allocation.seconds["resolution"]) <= {params.low, params.high, params.uniform}
    uniform = budget.Uniform(params)
    for i, s in enumerate(clip_scores):
        spent = Counter(chosen(allocation, f"c{i}"))
        fell_back = allocation.fallback[f"c{i}"]
        assert fell_back == (params.policy == "anchored_topk" and np.std(s) < params.fallback_std)
        policy = uniform if fell_back else budget.POLICIES[params.policy](params)
        assert spent == policy.spend(len(s))
        if params.policy == "anchored_topk" and not fell_back:
            assert spent[params.high] == min(len(s), params.k * (3 if params.adjacent else 1))


@settings(max_examples=60, deadline=None)
@given(clips, clips, params)
def test_cost_is_additive_over_clips(first, second, params):
    a = table(**{f"a{i}": s for i, s in enumerate(first)})
    b = table(**{f"b{i}": s for i, s in enumerate(second)})
    prices = budget.pixel_costs(params.low, params.high, params.uniform)
    whole = budget.cost(allocate(pd.concat([a, b]), params), prices)
    parts = budget.cost(allocate(a, params), prices) + budget.cost(allocate(b, params), prices)
    assert whole == pytest.approx(parts, rel=1e-12)


# --- the registry's contract: every registered policy passes the same checks --------------------


@pytest.mark.parametrize("name", sorted(budget.POLICIES))
def test_registered_policy_keeps_the_contract(name):
    cls = budget.POLICIES[name]
    assert issubclass(cls, budget.Policy) and cls.name == name
    assert isinstance(cls.uses_eventness, bool)
    params = Budget(policy=name, k=2, adjacent=True, shift=1)
    policy = cls(params)
    rng = np.random.default_rng(0)
    for seconds in [1, 2, 3, 7, 10, 15]:
        for scores in (rng.random(seconds), np.zeros(seconds), rng.integers(0, 2, seconds) * 1.0):
            resolutions = policy.resolutions(scores)
            assert resolutions.shape == (seconds,)
            assert set(resolutions.tolist()) <= {params.low, params.high, params.uniform}
            np.testing.assert_array_equal(policy.resolutions(scores.copy()), resolutions)
            assert Counter(resolutions.tolist()) == policy.spend(seconds)


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="'uniform' is registered twice"):
        budget.register_policy(budget.Uniform)
    assert budget.POLICIES["uniform"] is budget.Uniform
