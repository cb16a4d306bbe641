"""Model files: round trip, safe loading, clear errors for corrupt, foreign or other-version files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from napari_weakbeam.core.classification import modelfile
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.classification.modelfile import (classifier_from_bytes, classifier_to_bytes, default_model_path,
                                            load_default_model, load_model, save_model)
from napari_weakbeam.core.classification.normalise import Normalisation
from test_models_synth import synth_frames


@pytest.fixture
def clf():
    torch.manual_seed(1)
    c = build_classifier("wbnet", 48, normalisation=Normalisation(high_percentile=99.0),
                         provenance={"note": "test", "n": np.int64(3), "x": np.float64(0.5)})
    for m in c.net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
    return c.eval()


@pytest.mark.parametrize("arch", ["wbnet", "paper"])
def test_round_trip_keeps_weights_and_metadata(tmp_path, arch):
    c = build_classifier(arch, 32, provenance={"seeds": [1, 2]}).eval()
    (tmp_path / "sub").mkdir()
    path = save_model(tmp_path / "sub" / "m.pt", c)
    d = load_model(path)
    frame = synth_frames(1, (96, 100), 32, seed=2)[0][0]
    np.testing.assert_array_equal(d.predict_frame(frame)[1], c.predict_frame(frame)[1])
    assert (d.arch, d.patch_size, d.class_names, d.hparams) == (c.arch, 32, c.class_names, c.hparams)
    assert d.provenance == {"seeds": [1, 2]} and d.normalisation == c.normalisation
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_bytes_round_trip(clf):
    d = classifier_from_bytes(classifier_to_bytes(clf))
    frame = synth_frames(1, (96, 96), 48, seed=3)[0][0]
    np.testing.assert_array_equal(d.predict_frame(frame)[1], clf.predict_frame(frame)[1])
    assert d.normalisation.high_percentile == 99.0 and d.provenance["n"] == 3


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_damaged_foreign_and_unsafe_files_give_one_line_errors(tmp_path, clf):
    good = save_model(tmp_path / "good.pt", clf)
    data = good.read_bytes()
    cases = {
        "truncated.pt": (data[: len(data) // 2], "truncated model file"),
        "cut_end.pt": (data[:-10], "truncated model file"),
        "corrupt.pt": (data[:3000] + bytes(500) + data[3500:], "damaged or truncated model file"),
        "random.pt": (os.urandom(4096), "not a napari-weakbeam model file"),
        "text.pt": (b"weights\n", "not a napari-weakbeam model file"),
        "empty.pt": (b"", "empty file"),
    }
    for name, (blob, expected) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(WeakbeamError, match=f"{name}: {expected}") as e:
            load_model(tmp_path / name)
        text = str(e.value)  # one clean line: no torch hint, no errno
        assert "\n" not in text and "Errno" not in text and "torch.load" not in text and len(text) < 250
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(WeakbeamError, match="foreign.pt: not a napari-weakbeam model file"):
        load_model(tmp_path / "foreign.pt")
    # a pickle that would run code is refused, never executed
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Evil(str(tmp_path / "pwned"))))
    with pytest.raises(WeakbeamError, match="evil.pt: not a napari-weakbeam model file"):
        load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    torch.save({"a": _Evil(str(tmp_path / "pwned"))}, tmp_path / "evil_zip.pt")
    with pytest.raises(WeakbeamError, match="evil_zip.pt: .*Python objects, which are never loaded"):
        load_model(tmp_path / "evil_zip.pt")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(WeakbeamError, match="model file not found"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(WeakbeamError, match="is a folder"):
        load_model(tmp_path)


class _Evil:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_other_format_version_and_inconsistent_weights(tmp_path, clf):
    payload = modelfile._to_payload(clf)
    torch.save({**payload, "format_version": 99}, tmp_path / "v99.pt")
    with pytest.raises(WeakbeamError, match="v99.pt: model format version 99 is not"):
        load_model(tmp_path / "v99.pt")
    sd = dict(payload["state_dict"])
    sd.pop(next(iter(sd)))
    torch.save({**payload, "state_dict": sd}, tmp_path / "missing_key.pt")
    with pytest.raises(WeakbeamError, match="missing_key.pt: model file is damaged or inconsistent"):
        load_model(tmp_path / "missing_key.pt")
    torch.save({**payload, "arch": "resnet"}, tmp_path / "arch.pt")
    with pytest.raises(WeakbeamError, match="arch.pt: unknown architecture 'resnet'"):
        load_model(tmp_path / "arch.pt")


def test_a_paper_model_of_another_patch_size_is_refused_for_other_patches(tmp_path):
    path = save_model(tmp_path / "p64.pt", build_classifier("paper", 64))
    with pytest.raises(WeakbeamError, match="trained for 64-pixel patches"):
        load_model(path).with_patch_size(32)


@pytest.mark.skipif(not default_model_path().exists(), reason="default model not trained yet")
def test_the_default_model_ships_and_loads():
    c = load_default_model()
    assert c.arch == "scanwb" and c.scan_aware and c.n_parameters < 10000
    single = load_model("single-frame")
    assert single.arch == "wbnet" and not single.scan_aware
    assert default_model_path().stat().st_size < 200_000
    assert c.provenance.get("training_script") == "scripts/train_default_model.py"


@pytest.mark.skipif(not default_model_path().exists(), reason="default model not trained yet")
def test_the_default_model_classifies_a_simulated_bliss_scan(tmp_path):
    """End to end: simulator -> Bliss HDF5 file -> open_scan -> default model, against the truth."""
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate, write_simulation

    path = tmp_path / "sim.h5"
    write_simulation(path, simulate(SimulationParams(rows=256, cols=320, frames=21, seed=4242, exposure=1500.0)))
    scan = open_scan(path)
    from napari_weakbeam.core.classification.predictions import classify_layer

    clf = load_default_model()
    label, prob = classify_layer(scan, 0, clf)
    truth = load_truth(path).classes(clf.patch_size)[0]
    assert label.shape == truth.shape == (21, 4, 5)
    recall = [(label[truth == k] == k).mean() for k in (1, 2)]
    assert min(recall) >= 0.9, recall
