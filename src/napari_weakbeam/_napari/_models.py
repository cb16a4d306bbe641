"""Which classifier a widget job runs: the session's, or the shipped default, at the patch size."""

from __future__ import annotations

from typing import Any


def classifier_for(classifier: Any, patch_size: int) -> Any:
    """The given classifier (or the shipped default) at ``patch_size``."""
    if classifier is None:
        from ..core.classification.modelfile import load_default_model

        classifier = load_default_model()
    return classifier.with_patch_size(patch_size)
