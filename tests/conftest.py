"""Shared fixtures. torch is imported before any QApplication exists (see docs/napari-notes)."""

import os

import torch  # noqa: F401  (import before Qt, as recommended for torch in a Qt process)

os.environ.setdefault("WEAKBEAM_DEVICE", "cpu")  # CI never depends on a GPU
torch.set_num_threads(2)
