"""`avgate plan check`: before the first look, each test stage's power at its `min_delta`,
estimated from the workspace's validation predictions, and the seeds and test groups 80% would
need (`gating.power`). Validation only: no test label is read; the test split is only counted.
The plan must name the primary metric params.yaml evaluates, and that metric must be a mean of
per-sample scores (its `per_sample` in `avgate.metrics`): those are what the check resamples.
"""

from __future__ import annotations

import pandas as pd

from avgate import metrics
from avgate.config import Params
from avgate.errors import StageError
from avgate.files import read_json
from avgate.gating import power
from avgate.gating.paths import SPEC
from avgate.gating.spec import check_params, load_spec
from avgate.layout.inputs import predicted_labels
from avgate.layout.results import SEED_SCORES, predictions_dir

SPLIT = "val"


def validation_table(params: Params) -> pd.DataFrame:
    """One row per validation sample and seed: seed, group, clip_id, correct (the primary
    metric's per-sample score, 0/1 for accuracy, of the labels the seed decides: by its tuned
    threshold where evaluate stored one)."""
    metric = metrics.METRICS[params.evaluate.primary_metric]
    if metric.per_sample is None:
        means = [name for name, m in metrics.METRICS.items() if m.per_sample is not None]
        raise StageError(
            f"params.yaml: evaluate.primary_metric {metric.name!r} is not a mean of per-sample "
            f"scores, so the plan check cannot simulate it; it can for {', '.join(means)}"
        )
    manifest = pd.read_parquet(params.data.interim_dir / "manifest.parquet")
    groups = manifest.set_index("clip_id")["group"].astype(str)
    frames = []
    for seed in params.train.seeds:
        path = predictions_dir(seed) / f"{SPLIT}.parquet"
        if not path.exists():
            raise StageError(f"{path} is missing: run `dvc repro` first (plan check reads it)")
        table = pd.read_parquet(path)
        threshold = read_json(predictions_dir(seed) / SEED_SCORES).get(metrics.THRESHOLD)
        correct = metric.per_sample(table["label"].to_numpy(), predicted_labels(table, threshold))
        clip_ids = table["clip_id"].to_numpy()
        frames.append(
            pd.DataFrame(
                {"seed": seed, "group": groups.loc[clip_ids].to_numpy(), "clip_id": clip_ids,
                 "correct": correct}
            )
        )  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_split_size(params: Params) -> tuple[int, int]:
    """Groups and clips in the test split (counted, not read: no labels)."""
    splits = pd.read_parquet(params.data.splits_dir / "splits.parquet")
    manifest = pd.read_parquet(params.data.interim_dir / "manifest.parquet")
    test = splits.loc[splits["split"] == "test", ["clip_id"]].merge(manifest, on="clip_id")
    return int(test["group"].nunique()), len(test)


def run(params: Params, replications: int = 200) -> tuple[dict, list[str]]:
    """The plan check's report and its lines to print."""
    spec = load_spec(SPEC)
    check_params(spec, params.task.kind, params.evaluate.primary_metric, str(SPEC))
    groups, clips = test_split_size(params)
    report = power.check(spec, validation_table(params), groups, clips, replications)
    return report, power.render(report)
