"""The LoRA fine-tuning path of train/evaluate on the small demo, with a tiny random WavLM
(and its feature extractor) saved to a temp folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

from avgate.config import Params
from avgate.declare import ConfigError
from avgate.errors import StageError
from avgate.files import read_json
from avgate.finetune import lora
from avgate.finetune.lora import fitting
from avgate.finetune.lora.adapters import TARGET_PRESETS, resolve_targets
from avgate.finetune.lora.base import base_model
from avgate.finetune.lora.checks import EQUIVALENCE_TOLERANCE
from avgate.finetune.lora.classifier import load_encoder
from avgate.finetune.lora.clips import ClipWindows, Featurizer
from avgate.layout.clips import usable_clips
from avgate.layout.labels import labels_of
from avgate.layout.results import DESCRIPTION, model_dir
from avgate.scoring import predictions_table
from avgate.stages import ingest, split
from avgate.stages.train.train_seed import checkpoint_path, lora_clips
from avgate.stages.train.train_seed import run as train
from avgate.training import checkpoint as checkpoints
from tests.conftest import write_params

WAVLM = WavLMConfig(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16),
    conv_stride=(20, 10),  # 80 frames a second: fast, and SpecAugment still masks
    conv_kernel=(20, 10),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    num_buckets=16,
)  # default dropout, LayerDrop and SpecAugment: training draws on every RNG
R, SEED = 2, 0
LORA = {"encoder": "wavlm", "epochs": 2, "batch_clips": 8, "r": R, "alpha": 4, "lr": 0.01}
CURVES = ("train_loss", "val_loss", "val_accuracy")


@pytest.fixture(scope="module")
def wavlm(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wavlm")
    WavLMModel(WAVLM).save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(path)
    return path


def checkpoint_dir(seed: int) -> Path:
    return checkpoint_path(seed).parent


def load_trained(params: Params, seed: int) -> tuple[torch.nn.Module, dict]:
    description = read_json(model_dir(seed) / DESCRIPTION)
    return lora.load(params, model_dir(seed), description), description


def predict(params: Params, seed: int, split_name: str):
    """Index, labels, logits and classes of a split, as the evaluate stage gets them."""
    model, description = load_trained(params, seed)
    index, logits = lora.predict(params, model, lora_clips(params, split_name, labelled=False))
    return index, labels_of(params, index), logits, description["classes"]


def settings(wavlm: Path, **overrides) -> dict:
    section = {"wavlm": {"model": str(wavlm)}}
    train_section = {"seeds": [SEED], "finetune": "lora", "lora": LORA}
    return {
        "embed": {"encoders": {"logmel": "logmel"}, "logmel": {}, **section},
        "train": train_section,
        **overrides,
    }


def adapter(root: Path, seed: int) -> dict[str, torch.Tensor]:
    folder = root / f"models/seed{seed}/adapter"
    return {
        **load_file(folder / "adapter_model.safetensors"),
        **load_file(folder / "head.safetensors"),
    }


def files(root: Path, seed: int) -> dict[str, bytes]:
    """Every file of a seed's model folder and dvclive log, by path."""
    folders = [root / f"models/seed{seed}", root / f"dvclive/train/seed{seed}"]
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def curves(root: Path, seed: int) -> dict[str, pd.DataFrame]:
    folder = root / f"dvclive/train/seed{seed}/plots/metrics"
    return {name: pd.read_csv(folder / f"{name}.tsv", sep="\t") for name in CURVES}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_demo, wavlm):
    """An ingested, split demo project and seed 0 trained there for 2 epochs, uninterrupted."""
    root = tmp_path_factory.mktemp("lora-stage")
    shutil.copytree(small_demo, root / "data/raw/demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        params = write_params(root, settings(wavlm))
        ingest.run(params)
        split.run(params)
        description = train(params, SEED)
    snapshot = files(root, SEED)
    return root, params, description, adapter(root, SEED), curves(root, SEED), snapshot


def test_train_writes_the_adapter_and_its_description(trained, wavlm):
    root, params, description, weights, _, _ = trained
    folder = root / "models/seed0"
    assert {p.name for p in folder.iterdir()} == {"adapter", "head.json"}
    assert {"adapter_config.json", "adapter_model.safetensors", "head.safetensors"} <= {
        p.name for p in (folder / "adapter").iterdir()
    }
    assert json.loads((folder / "head.json").read_text()) == description
    assert all("lora_" in name for name in load_file(folder / "adapter/adapter_model.safetensors"))
    segments = pd.read_parquet(root / "data/interim/demo/segments.parquet")
    splits = pd.read_parquet(root / "data/splits/demo/splits.parquet")
    train_rows = segments.merge(splits, on="clip_id").query("split == 'train'")
    assert description["classes"] == sorted(set(train_rows["label"]))
    counts = train_rows["label"].value_counts().sort_index().to_dict()
    assert description["train_label_counts"] == counts
    assert description["finetune"] == "lora" and description["kind"] == "event"
    assert description["base_model"] == str(wavlm)
    assert description["base_identity"]["weights"] == "local folder"
    assert description["target_modules"] == ["q_proj", "k_proj", "v_proj", "out_proj"]
    assert description["forward_equivalence_max_abs_diff"] < EQUIVALENCE_TOLERANCE
    assert 0 <= description["forward_equivalence_mean_abs_logit_diff"] < EQUIVALENCE_TOLERANCE
    assert description["epochs_run"] == 2 and description["best_epoch"] in (1, 2)
    assert not (root / checkpoint_dir(SEED)).exists()
    profile = json.loads((root / "data/profiles/train/seed0.json").read_text())
    assert profile["samples_per_s"] > 0 and profile["resumed_from_epoch"] == 0


def test_only_adapters_and_head_train_and_the_counts_are_right(trained, wavlm):
    _, _, description, weights, _, _ = trained
    n_classes = len(description["classes"])
    hidden, layers = WAVLM.hidden_size, WAVLM.num_hidden_layers
    adapters = layers * 4 * R * (hidden + hidden)  # q, k, v, out: A (r x in) + B (out x r)
    head = (hidden + 1) * n_classes  # mean pooling has no weights
    base = sum(p.numel() for p in load_encoder(wavlm).parameters())
    assert description["adapter_parameters"] == adapters
    assert description["head_parameters"] == head
    assert description["trainable_parameters"] == adapters + head
    assert description["total_parameters"] == base + adapters + head
    assert sum(t.numel() for t in weights.values()) == adapters + head  # what was saved


def test_dvclive_logs_one_row_per_epoch(trained):
    _, _, description, _, logged, _ = trained
    for name, table in logged.items():
        assert table["step"].tolist() == [0, 1] and np.isfinite(table[name]).all(), name
    val_loss = logged["val_loss"]["val_loss"].to_numpy()
    assert description["best_val_loss"] == pytest.approx(val_loss.min())
    assert description["best_epoch"] == int(val_loss.argmin()) + 1


def test_predict_gives_one_row_per_second_and_the_same_logits_twice(trained, monkeypatch):
    root, params, description, _, _, _ = trained
    monkeypatch.chdir(root)
    clips = usable_clips(params)
    segments = pd.read_parquet(root / "data/interim/demo/segments.parquet")
    for name in ("val", "test"):
        index, labels, logits, classes = predict(params, SEED, name)
        expected = segments[segments["clip_id"].isin(clips[clips["split"] == name]["clip_id"])]
        assert index.columns.tolist() == ["clip_id", "t"]
        assert index.equals(expected[["clip_id", "t"]].reset_index(drop=True))
        assert labels.tolist() == expected["label"].tolist()
        assert classes == description["classes"]
        assert logits.shape == (len(index), len(classes)) and logits.dtype == np.float32
        table = predictions_table(index, labels, logits, classes)
        assert len(table) == len(index) and f"logit_{classes[0]}" in table
        again = predict(params, SEED, name)[2]
        assert np.array_equal(logits, again)


def test_the_saved_weights_are_the_best_epochs(trained, monkeypatch):
    """Validation loss and accuracy of the saved model are those logged for the best epoch."""
    root, params, description, _, logged, _ = trained
    monkeypatch.chdir(root)
    _, labels, logits, classes = predict(params, SEED, "val")
    targets = torch.tensor([classes.index(label) for label in labels])
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), targets).item()
    assert loss == pytest.approx(description["best_val_loss"], rel=1e-5)
    accuracy = (logits.argmax(axis=1) == targets.numpy()).mean()
    best = description["best_epoch"] - 1
    assert accuracy == pytest.approx(logged["val_accuracy"]["val_accuracy"][best])


def test_same_seed_same_adapter_other_seed_differs(trained, monkeypatch, wavlm):
    root, _, description, weights, _, _ = trained
    monkeypatch.chdir(root)
    embed = {"encoders": {"logmel": "logmel"}, "workers": 2, "wavlm": {"model": str(wavlm)}}
    params = write_params(root, settings(wavlm, embed=embed))
    assert train(params, SEED) == description  # decoded in two worker processes
    again = adapter(root, SEED)
    assert again.keys() == weights.keys()
    assert all(torch.equal(again[k], weights[k]) for k in weights)
    train(params, 1)
    other = adapter(root, 1)
    assert not all(torch.equal(other[k], weights[k]) for k in weights)


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_uninterrupted_result(trained, monkeypatch):
    root, params, description, weights, logged, _ = trained
    monkeypatch.chdir(root)
    save = checkpoints.save

    def save_then_die(checkpoint, state):
        save(checkpoint, state)
        raise Killed

    monkeypatch.setattr(checkpoints, "save", save_then_die)
    with pytest.raises(Killed):
        train(params, SEED)
    assert {p.name for p in checkpoint_dir(SEED).iterdir()} == {"last.pt"}
    kept = root / "kept-checkpoint"
    shutil.copytree(checkpoint_dir(SEED), kept)
    monkeypatch.setattr(checkpoints, "save", save)

    assert train(params, SEED) == description
    profile = json.loads((root / "data/profiles/train/seed0.json").read_text())
    assert profile["resumed_from_epoch"] == 1
    resumed = adapter(root, SEED)
    assert all(torch.equal(resumed[k], weights[k]) for k in weights)
    assert files(root, SEED) == trained[5]  # byte for byte
    for name, table in curves(root, SEED).items():
        assert table[["step", name]].equals(logged[name][["step", name]]), name
    assert not checkpoint_dir(SEED).exists()

    shutil.copytree(kept, checkpoint_dir(SEED))  # made with other params: not resumed
    other = checkpoints.Checkpointing(checkpoint_path(SEED), "another fingerprint")
    assert checkpoints.load(other) is None and not checkpoint_path(SEED).exists()


def test_clip_task_predicts_the_mean_of_each_clips_seconds(trained, monkeypatch, wavlm):
    root, _, _, _, _, _ = trained
    monkeypatch.chdir(root)
    clip_task = settings(
        wavlm,
        task={"kind": "clip"},
        evaluate={"primary_metric": "accuracy"},
        train={"seeds": [3], "finetune": "lora", "lora": {**LORA, "epochs": 1}},
    )
    params = write_params(root, clip_task)
    description = train(params, 3)
    manifest = pd.read_parquet(root / "data/interim/demo/manifest.parquet").set_index("clip_id")
    index, labels, logits, classes = predict(params, 3, "test")
    assert description["kind"] == "clip" and classes == description["classes"]
    assert index.columns.tolist() == ["clip_id"] and index["clip_id"].is_unique
    assert labels.tolist() == manifest.loc[index["clip_id"], "label"].tolist()
    assert logits.shape == (len(index), len(classes))

    model, _ = load_trained(params, 3)
    clips = lora_clips(params, "test", labelled=False)
    dataset = ClipWindows(
        clips, torch.zeros(len(clips.index)), Featurizer(base_model(params), model.input_name)
    )
    with torch.inference_mode():
        per_second = model.per_second_logits(dataset[0][0][None])[0]
    assert per_second.shape == (clips.seconds[0], len(classes))
    np.testing.assert_allclose(logits[0], per_second.mean(dim=0).numpy(), rtol=1e-5, atol=1e-6)


def test_predict_refuses_other_base_weights(trained, monkeypatch, tmp_path):
    root, params, _, _, _, _ = trained
    monkeypatch.chdir(root)
    torch.manual_seed(1)
    WavLMModel(WAVLM).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path)
    moved = write_params(root, settings(tmp_path))
    with pytest.raises(StageError, match=r"models/seed0: trained on base weights .* re-run"):
        predict(moved, SEED, "val")


@pytest.mark.parametrize("fault", ["unfrozen base weight", "adapter the forward never reaches"])
def test_a_failed_check_fails_the_run(trained, monkeypatch, fault):
    root, params, _, _, _, _ = trained
    monkeypatch.chdir(root)
    wrap = fitting.wrap_lora

    def faulty(model, targets, r, alpha, dropout, train_base):
        if fault == "unfrozen base weight":  # undeclared: not in train.lora.train_base
            wrap(model, targets, r, alpha, dropout, train_base)
            next(model.encoder.get_base_model().parameters()).requires_grad_(True)
            return model
        model.encoder = get_peft_model(model.encoder, LoraConfig(target_modules=targets, r=r))
        return model  # plain peft: WavLM reads q_proj.weight itself

    monkeypatch.setattr(fitting, "wrap_lora", faulty)
    message = "base weights would train" if fault.startswith("unfrozen") else "never reaches"
    with pytest.raises(StageError, match=f"train.lora on embed.wavlm: .*{message}"):
        train(params, 5)
    assert not (root / "models/seed5").exists()


def test_the_base_must_be_an_hf_audio_section(wavlm):
    embed = {"encoders": {"logmel": "logmel", "pitch": "crepe"}, "logmel": {}, "pitch": {}}
    lora_section = {"finetune": "lora", "lora": {**LORA, "encoder": "pitch"}}
    params = Params.from_dict(settings(wavlm, embed=embed, train=lora_section))
    with pytest.raises(ConfigError, match=r"embed\.pitch must hold hf_audio options here"):
        base_model(params)
    pinned = {"model": str(wavlm), "revision": "v2"}
    params = Params.from_dict(
        settings(wavlm, embed={"encoders": {"logmel": "logmel"}, "logmel": {}, "wavlm": pinned})
    )
    with pytest.raises(ConfigError, match=r"train\.lora\.encoder 'wavlm': embed\.wavlm\.revision"):
        base_model(params)


def test_mlp_targets_on_an_architecture_without_them_name_the_key(wavlm, monkeypatch):
    """An architecture whose MLP modules are named otherwise (simulated on WavLM)."""
    attention = TARGET_PRESETS["attention"]["wavlm"]
    monkeypatch.setitem(TARGET_PRESETS["attention_mlp"], "wavlm", [*attention, "fc1", "fc2"])
    with pytest.raises(ConfigError, match=r"train\.lora\.targets names modules \['fc1', 'fc2'\]"):
        resolve_targets(load_encoder(wavlm), "attention_mlp")
