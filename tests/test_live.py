"""weakbeam watch against a real writer process: a Bliss scan written frame by frame while it is followed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_weakbeam.cli import main
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.classification.live import watch
from napari_weakbeam.core.scanfiles.live_feed import open_feed
from napari_weakbeam.core.classification.modelfile import save_model
from napari_weakbeam.core.classification.predictions import load_predictions
from napari_weakbeam.workflows import classify_scan, run
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.classification.weak_range import load_weak_beam

P, N, S = 16, 9, 32


def _scan_file(path: Path, n_layers: int = 2) -> Path:
    rng = np.random.default_rng(1)
    ang = 10 + 0.01 * np.arange(N)
    cols = np.arange(S)[None, None, :] / S
    layers = []
    for k in range(n_layers):
        centre = 10.04 + 0.02 * (cols - 0.5) + 0.005 * k
        frames = 100 + 3000 * np.exp(-(((ang[:, None, None] - centre) / 0.015) ** 2)) * np.ones((N, S, S))
        layers.append(rng.poisson(frames).astype(np.uint16))
    write_bliss(path, layers, [ang] * n_layers, np.arange(n_layers) * 2.0)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(3)
    clf = build_classifier("scanwb", P)  # untrained: equality with offline does not need a good model
    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_model(path, clf)
    return path, clf


def _writer(src: Path, dst: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "napari_weakbeam.core.scanfiles.bliss_live_writer", str(src), str(dst),
                             *args], stdout=subprocess.PIPE, text=True)


def _same_as_offline(live: Path, out: Path, clf) -> None:
    offline = out.with_name("offline.h5")
    run(classify_scan(open_scan(str(live)), clf, offline))
    a, b = load_predictions(out), load_predictions(offline)
    assert a.scan_names == b.scan_names
    assert np.array_equal(a.label, b.label) and (a.label > 0).any()
    assert np.array_equal(a.prob, b.prob, equal_nan=True)
    assert np.array_equal(a.curves, b.curves, equal_nan=True)


def test_watch_cli_follows_next_scans_with_pauses_bursts_and_half_written_frames(tmp_path, model, capsys):
    src, live, out = _scan_file(tmp_path / "src.h5"), tmp_path / "live.h5", tmp_path / "pred.h5"
    writer = _writer(src, live, "--period", "0.02", "--burst", "2", "--half-pause", "0.05", "--pause-at", "4:0.3",
                     "--zigzag")
    try:
        writer.stdout.readline()  # the file exists (a loaded machine takes seconds to start the writer)
        rc = main(["watch", str(live), "--scan", "1", "--next", "--idle-timeout", "1.5", "--out", str(out),
                   "--model", str(model[0])])
    finally:
        writer.wait(timeout=30)
    assert rc == 0 and writer.returncode == 0
    text = capsys.readouterr().out
    assert text.count("frame ") == 2 * N and "scan 2.1 ended" in text and "nothing new at scan 3.1" in text
    assert "layer 2: weak beam" in text and "so far, layer 1: weak beam" in text  # updated while acquiring
    _same_as_offline(live, out, model[1])
    stored = load_weak_beam(out)
    assert stored is not None and stored["ranges"].shape == (2, 2, 2)


def test_watch_started_mid_scan_of_an_aborted_scan_that_pauses(tmp_path, model):
    src, live, out = _scan_file(tmp_path / "src.h5", 1), tmp_path / "live.h5", tmp_path / "pred.h5"
    writer = _writer(src, live, "--period", "0.1", "--abort-after", "6", "--reopen", "--pause-at", "4:1.0")
    try:
        for _ in range(3):  # the watcher starts once three frames are written: it catches up
            writer.stdout.readline()
        # the feed gives up waiting after 0.3 s (as Follow's does, to stay stoppable): the 1 s pause
        # after frame 4 goes on in the same layer, every frame once
        feed = open_feed(live, idle_timeout=0.3)
        events = list(watch(live, model[1], out, scan="1", idle_timeout=10, feed=feed))
        feed.close()
    finally:
        writer.wait(timeout=30)
    frames = [e for e in events if e.kind == "frame"]
    assert [e.index for e in frames] == list(range(6))
    assert events[-1].kind == "scan_done" and events[-1].layer.n == 6
    _same_as_offline(live, out, model[1])
    assert load_predictions(out).label.shape[1] == 6


def test_watch_restarted_resumes_from_its_output(tmp_path, model):
    live, out = _scan_file(tmp_path / "live.h5"), tmp_path / "pred.h5"  # a finished file: end_time written
    first = [e.kind for e in watch(live, model[1], out, scan="1")]
    assert first.count("frame") == N and first[-1] == "scan_done"
    assert load_predictions(out).scan_names == ["1.1"]
    again = [(e.kind, e.scan) for e in watch(live, model[1], out, scan="1", follow_next=True, idle_timeout=0.5)]
    assert again[0] == ("skipped", "1.1") and ("scan_done", "2.1") in again
    _same_as_offline(live, out, model[1])


def test_watch_user_mistakes_are_one_line_errors(tmp_path, model, capsys):
    live = _scan_file(tmp_path / "live.h5", 1)
    t0 = time.perf_counter()
    assert main(["watch", str(live), "--scan", "7", "--idle-timeout", "0.5", "--out", str(tmp_path / "p.h5"),
                 "--model", str(model[0])]) == 2
    assert time.perf_counter() - t0 < 20
    assert "scan 7.1 did not start" in capsys.readouterr().err
    assert main(["watch", str(live), "--scan", "x", "--model", str(model[0])]) == 2
    assert main(["watch", str(live), "--out", str(live), "--model", str(model[0])]) == 2
    (tmp_path / "notes.h5").write_text("not hdf5")
    assert main(["watch", str(tmp_path / "notes.h5"), "--model", str(model[0])]) == 2
    assert main(["watch", str(tmp_path), "--model", str(model[0])]) == 2
    assert main(["watch", str(live), "--redis", "redis://127.0.0.1:1", "--model", str(model[0])]) == 2
    err = capsys.readouterr().err
    assert "cannot read blissdata's Redis data store at redis://127.0.0.1:1" in err
    assert "--scan x" in err and "is the input being read" in err
    assert "not an HDF5 file" in err and "is a folder" in err
    assert live.stat().st_size > 0 and open_scan(str(live)).n_layers == 1


def test_watch_reads_a_scan_without_fscan_parameters(tmp_path, model):
    import h5py

    live, out = _scan_file(tmp_path / "live.h5", 1), tmp_path / "pred.h5"
    with h5py.File(live, "a") as f:  # an ascan: the motor and points only in the title
        del f["1.1/instrument/fscan_parameters"]
        del f["1.1/title"]
        f["1.1/title"] = f"ascan diffry 10 10.08 {N - 1} 0.5"
    kinds = [e.kind for e in watch(live, model[1], out, scan="1")]
    assert kinds.count("frame") == N and kinds[-1] == "scan_done"
    _same_as_offline(live, out, model[1])


def test_a_scan_being_written_is_read_as_in_progress_not_aborted(tmp_path):
    from napari_weakbeam.core.scanfiles.bliss_live_writer import LiveBlissWriter

    w = LiveBlissWriter(tmp_path / "live.h5")
    w.start_scan(1, 5, (S, S), start_pos=10, step=0.01)
    w.add_frames(np.ones((2, S, S), np.uint16), [10.0, 10.01])
    with pytest.warns(UserWarning, match=r"scan 1\.1 is still being acquired \(no end_time yet\): 2 of 5 frames"):
        open_scan(str(tmp_path / "live.h5"))
    w.end_scan(aborted=True)
    w.close()
    with pytest.warns(UserWarning, match=r"scan 1\.1 was aborted: 2 of 5 frames"):
        open_scan(str(tmp_path / "live.h5"))


def test_bright_level_from_the_kept_largest_samples_equals_the_percentile_of_all():
    from napari_weakbeam.core.classification.scan_context import BRIGHT_PERCENTILE, ContextAccumulator

    rng = np.random.default_rng(5)
    for max_samples in (4_000_000, 2_000):  # the second keeps too few at first: rebuilt from all samples
        acc = ContextAccumulator(6, (120, 130), 8, max_samples=max_samples)
        for k in range(9):  # more frames than planned, as a live scan may bring
            if k >= len(acc.angles):
                acc.curves = np.concatenate([acc.curves, np.zeros_like(acc.curves)])
                acc.angles = np.concatenate([acc.angles, np.full(len(acc.angles), np.nan)])
            acc.add(k, rng.poisson(rng.uniform(5, 900), (120, 130)).astype(np.uint16), 10 + 0.01 * k)
            every = float(np.percentile(np.concatenate(acc.samples), BRIGHT_PERCENTILE))
            assert acc.context().bright == every


def test_the_live_classifier_gives_bit_identical_probabilities(model):
    from napari_weakbeam.core.classification.live import live_classifier
    from napari_weakbeam.core.classification.modelfile import load_default_model

    rng = np.random.default_rng(2)
    for clf in (model[1], load_default_model()):
        fast = live_classifier(clf)
        assert fast is not clf and live_classifier(clf) is fast
        clf.eval(), fast.eval()  # as predict_frames runs them
        for shape in ((S, S), (300, 213)):
            frames = rng.poisson(100 + 3000 * rng.random((2,) + shape) ** 8).astype(np.uint16)
            g = tuple(-(-s // clf.patch_size) for s in shape)
            for features in (None, rng.random(g + (9,)).astype(np.float32)):
                a = clf.frame_prob_wb(frames[0], "f", (100.0, 3000.0), features)
                np.testing.assert_array_equal(a, fast.frame_prob_wb(frames[0], "f", (100.0, 3000.0), features))


def test_the_labels_so_far_are_written_frame_by_frame_beside_the_output(tmp_path, model):
    """While a scan is followed PRED.live.h5 holds every frame labelled so far (read here, from the
    file, after each frame), with where weak beam is; when the scan ends PRED.h5 has it all."""
    from napari_weakbeam.core.classification.live_file import live_path, load_live

    src, live, out = _scan_file(tmp_path / "src.h5", 1), tmp_path / "live.h5", tmp_path / "pred.h5"
    writer = _writer(src, live, "--period", "0.05")
    seen = []
    try:
        writer.stdout.readline()
        for ev in watch(live, model[1], out, scan="1", idle_timeout=5.0):
            if ev.kind == "frame" and not ev.deferred:
                on_disk = load_live(live_path(out))
                n = on_disk["frames"]
                assert on_disk["scan"] == "1.1" and n == ev.layer.n and not out.exists()
                np.testing.assert_array_equal(on_disk["label"], ev.layer.label[:n])  # what the watcher reported
                np.testing.assert_array_equal(on_disk["angles"], ev.layer.acc.angles[:n])
                assert on_disk["weak_beam"].shape == (len(ev.weak_beam.ranges), 2)
                seen.append(n)
    finally:
        writer.wait(timeout=30)
    assert seen and seen[-1] == N and seen == sorted(seen)
    assert out.exists() and not live_path(out).exists()  # the final file replaces the live one
    _same_as_offline(live, out, model[1])


def test_a_foreign_file_in_the_live_files_place_is_refused(tmp_path, model):
    from napari_weakbeam.core.classification.live_file import live_path
    from napari_weakbeam.core.errors import WeakbeamError

    out = tmp_path / "pred.h5"
    live_path(out).write_text("my notes")
    with pytest.raises(WeakbeamError, match="pred.live.h5"):
        next(watch(tmp_path / "live.h5", model[1], out, scan="1", idle_timeout=0.5))
    assert live_path(out).read_text() == "my notes"


def test_warm_up_leaves_the_first_frame_nothing_to_import(model):
    """The first frame of a fresh `weakbeam watch` process once paid 0.4-0.6 s of imports (the scan
    context, the predictions, dask.array): the warm-up, done before any scan, takes them."""
    code = (
        "import sys\n"
        "from napari_weakbeam.core.classification.live import live_classifier, warm_up\n"
        "from napari_weakbeam.core.classification.modelfile import load_model\n"
        f"clf = live_classifier(load_model({str(model[0])!r}))\n"
        "before = set(sys.modules)\n"
        "warm_up(clf)\n"
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('napari_weakbeam', 'dask.array'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "napari_weakbeam.core.classification.predictions" in out and "dask.array" in out


def test_a_scan_that_has_started_is_warmed_up_at_its_frame_size_before_its_first_frame(tmp_path):
    """Between a scan's start and its first frame (the motors move), the watcher runs one frame of
    the scan's size through the network, so the first real frame does not pay that size's first
    touch; a scan whose frames have already landed is not delayed by it."""
    from napari_weakbeam.core.classification.live import _WARM, live_classifier

    torch.manual_seed(5)
    clf = build_classifier("scanwb", P)  # its own: the warm-up is remembered per classifier
    src, live = _scan_file(tmp_path / "src.h5", 1), tmp_path / "live.h5"
    writer = _writer(src, live, "--period", "0.02", "--pause-at", "0:2")
    try:
        feed = open_feed(live, idle_timeout=10)
        kinds = [e.kind for e in watch(live, clf, None, scan="1", idle_timeout=10, feed=feed)]
        assert feed.landed("1.1") == N
        feed.close()
    finally:
        writer.wait(timeout=30)
    assert kinds.count("frame") == N
    assert (S, S) in _WARM[live_classifier(clf)]
    torch.manual_seed(6)
    late = build_classifier("scanwb", P)
    list(watch(live, late, None, scan="1"))  # every frame there already: no warm-up at the size
    assert (S, S) not in _WARM[live_classifier(late)]
