"""Shared fixtures. torch is imported before any QApplication exists (see docs/napari-notes)."""

import os

import pytest

import torch  # noqa: F401  (import before Qt, as recommended for torch in a Qt process)

os.environ.setdefault("WEAKBEAM_DEVICE", "cpu")  # CI never depends on a GPU
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def dask_client():
    """A real LocalCluster of 2 worker processes on 127.0.0.1, started once for the test run."""
    from napari_weakbeam.core.distributed import local_cluster

    with local_cluster(2) as client:
        yield client


@pytest.fixture
def messages():
    """Notifications shown during the test (errors and infos), as text."""
    from napari.utils.notifications import notification_manager

    seen: list[str] = []

    def grab(notification):
        seen.append(str(notification.message))

    notification_manager.notification_ready.connect(grab)
    yield seen
    notification_manager.notification_ready.disconnect(grab)
