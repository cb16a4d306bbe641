"""Shared fixtures. torch is imported before any QApplication exists (see docs/napari-notes)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import torch  # noqa: F401  (import before Qt, as recommended for torch in a Qt process)

os.environ.setdefault("WEAKBEAM_DEVICE", "cpu")  # CI never depends on a GPU
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def dask_client():
    """A real LocalCluster of 2 worker processes on 127.0.0.1, started once for the test run."""
    from napari_weakbeam.core.distribution.distributed import local_cluster

    with local_cluster(2) as client:
        yield client


SLURM_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm-localhost.sh"


@pytest.fixture(scope="session")
def slurm():
    """A live single-node SLURM (scripts/slurm-localhost.sh), started for the tests that need it and
    stopped after them (left running if it was already up). Skipped only where it cannot run (no
    slurm-wlm/munge, not root); in CI (``$CI`` set) a SLURM that does not start fails the tests."""

    def cannot(reason: str):
        if os.environ.get("CI"):
            pytest.fail(f"SLURM tests must run in CI: {reason}")
        pytest.skip(reason)

    if not (shutil.which("slurmctld") and shutil.which("munged")):
        cannot("slurm-wlm and munge are not installed (scripts/setup.sh --test installs them)")
    if os.geteuid() != 0:
        cannot("starting the localhost SLURM daemons needs root")
    was_up = subprocess.run([SLURM_SCRIPT, "status"], capture_output=True).returncode == 0
    if not was_up:
        started = subprocess.run([SLURM_SCRIPT, "start"], capture_output=True, text=True, timeout=120)
        if started.returncode != 0:
            cannot(f"SLURM did not start: {started.stderr.strip()[-300:]}")
    yield
    if not was_up:
        subprocess.run([SLURM_SCRIPT, "stop"], capture_output=True, timeout=120)


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
