"""Training: accuracy, determinism, progress and cancellation, splits, fine-tuning, bad labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_weakbeam.core.classification.annotations import Annotations
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.classification.modelfile import save_model
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.classification.training import TrainConfig, Trainer, TrainProgress
from test_models_synth import synth_frames

P = 32


def cfg(**kw) -> TrainConfig:
    base = dict(patch_size=P, epochs=2, seed=0, device="cpu", num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data():
    return synth_frames(12, (128, 128), P, seed=21)


def test_wbnet_learns_weak_and_strong_beam_on_held_out_frames(data):
    frames, classes, _ = data
    trainer = Trainer(frames, classes, cfg(epochs=8))
    progress = list(trainer.run())
    assert progress[-1].done and "finished" in progress[-1].message
    assert all(isinstance(p, TrainProgress) and np.isfinite(p.loss) for p in progress[:-1])
    n_batches = progress[0].n_batches
    assert len(progress) - 1 == 8 * n_batches  # one report per batch
    assert [p.batch for p in progress[:n_batches]] == list(range(1, n_batches + 1))
    assert progress[-2].val_accuracy is not None and len(trainer.history) == 8
    test, truth, _ = synth_frames(6, (150, 140), P, seed=22)
    label, _ = trainer.classifier.predict_frames(test)
    recall = [(label[truth == k] == k).mean() for k in (1, 2)]
    assert min(recall) >= 0.9, recall
    prov = trainer.classifier.provenance
    assert prov["n_train_patches"] + prov["n_val_patches"] == int((classes > 0).sum())


def test_same_seed_same_weights_other_seed_other_weights(data):
    frames, classes, _ = data
    runs = [Trainer(frames, classes, cfg(seed=s)).train().net.state_dict() for s in (3, 3, 4)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_stop_takes_effect_within_one_batch(data):
    frames, classes, _ = data
    trainer = Trainer(frames, classes, cfg(epochs=5))
    gen = trainer.run()
    first = next(gen)
    trainer.stop()
    rest = list(gen)
    assert first.batch == 1 and not first.done
    assert len(rest) == 1 and rest[0].done and "stopped" in rest[0].message
    label, _ = trainer.classifier.predict_frame(frames[0])  # still usable
    assert label.shape == classes.shape[1:]


def test_closing_the_generator_cancels(data):
    frames, classes, _ = data
    trainer = Trainer(frames, classes, cfg(epochs=5))
    gen = trainer.run()
    next(gen)
    gen.close()
    assert not trainer.classifier.net.training
    assert trainer.classifier.provenance["trained_epochs"] == 1


def test_validation_is_split_by_whole_frames_and_classes_are_balanced(data):
    frames, classes, _ = data
    t = Trainer(frames, classes, cfg(val_fraction=0.25))
    train_frames, val_frames = set(t.frame_ids[t.train_idx]), set(t.frame_ids[t.val_idx])
    assert val_frames and not train_frames & val_frames
    y = t.targets[t.train_idx]
    n_wb, n_sb = int((y == 0).sum()), int((y == 1).sum())
    w = t.class_weight.numpy()
    assert w[0] * n_wb == pytest.approx(w[1] * n_sb, rel=1e-5)


def test_paper_architecture_trains_too(data):
    frames, classes, _ = data
    c = Trainer(frames[:4], classes[:4], cfg(arch="paper", epochs=1, batch_size=64)).train()
    assert c.arch == "paper" and c.predict_frame(frames[0])[0].shape == (4, 4)


def test_bad_labels_and_frames(data):
    frames, classes, _ = data
    with pytest.raises(WeakbeamError, match="only weak beam patches: label at least one patch of each class"):
        Trainer(frames, np.where(classes == 2, 0, classes), cfg())
    with pytest.raises(WeakbeamError, match="only strong beam"):
        Trainer(frames, np.where(classes == 1, 0, classes), cfg())
    with pytest.raises(WeakbeamError, match="no labelled patches"):
        Trainer(frames, np.zeros_like(classes), cfg())
    with pytest.raises(WeakbeamError, match="do not fit"):
        Trainer(frames, classes[:, :2], cfg())
    with pytest.raises(WeakbeamError, match="unknown class codes"):
        Trainer(frames, classes * 2, cfg())
    bad = frames.astype(np.float32)
    bad[2, 5, 5] = np.nan
    with pytest.raises(WeakbeamError, match="training frame 2 holds 1 NaN"):
        Trainer(bad, classes, cfg())


def test_fine_tuning_from_a_file(tmp_path, data):
    frames, classes, _ = data
    paper = tmp_path / "paper32.pt"
    save_model(paper, build_classifier("paper", 32))
    with pytest.raises(WeakbeamError, match="trained for 32-pixel patches"):
        Trainer(frames, np.zeros((12, 2, 2), np.uint8), cfg(patch_size=64, start=str(paper)))
    base = Trainer(frames, classes, cfg(epochs=3)).train()
    wb = tmp_path / "wb.pt"
    save_model(wb, base)
    tuned = Trainer(frames, classes, cfg(epochs=1, start=str(wb), lr=1e-4))
    assert tuned.classifier.provenance["fine_tuned_from"] == str(wb)
    before = {k: v.clone() for k, v in tuned.classifier.net.state_dict().items()}
    assert all(torch.equal(before[k], base.net.state_dict()[k]) for k in before)
    tuned.train()
    with pytest.raises(WeakbeamError, match="model file not found"):
        Trainer(frames, classes, cfg(start=str(tmp_path / "nope.pt")))


def test_from_annotations_reads_only_labelled_frames_of_a_bliss_scan(tmp_path, data):
    frames, classes, _ = data
    path = tmp_path / "scan.h5"
    write_bliss(path, [frames[:6], frames[6:]], [np.linspace(-0.1, 0.1, 6)] * 2, [0.0, 2.0])
    scan = open_scan(path)
    label = np.zeros((2, 6) + classes.shape[1:], np.uint8)
    label[0, 1], label[1, 4] = classes[1], classes[10]
    ann = Annotations(label=label, patch_size=P, frame_shape=scan.frame_shape, angles=scan.angles)
    t = Trainer.from_annotations(scan, ann, cfg(patch_size=64, epochs=1))
    assert t.classifier.patch_size == P  # the annotations' patch size wins
    assert sorted(set(t.frame_ids)) == [0, 1]
    assert int((t.targets >= 0).sum()) == int((classes[[1, 10]] > 0).sum())
    t.train()
    with pytest.raises(WeakbeamError, match="no labelled patches"):
        Trainer.from_annotations(scan, Annotations(np.zeros_like(label), P, scan.frame_shape), cfg())


def test_impossible_settings_are_refused(data):
    frames, classes, _ = data
    for bad, match in [(dict(epochs=0), "epochs"), (dict(lr=-1.0), "learning rate"),
                       (dict(val_fraction=1.0), "validation fraction"), (dict(schedule="cosine"), "schedule"),
                       (dict(device="tpu"), "unknown device")]:
        with pytest.raises(WeakbeamError, match=match):
            Trainer(frames, classes, cfg(**bad))


def test_fine_tuning_the_default_model_at_another_patch_size(data):
    frames, classes, _ = data
    t = Trainer(frames, classes, cfg(start="default", epochs=1, lr=1e-4))
    assert t.classifier.arch == "scanwb" and t.classifier.patch_size == P  # the default is 64-px
    assert t.classifier.provenance["fine_tuned_from"] == "default"
    assert t.train().predict_frame(frames[0])[0].shape == classes.shape[1:]
