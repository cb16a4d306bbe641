"""The patch classifier: a network plus everything needed to use it on raw detector frames."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .device import resolve_device
from ..errors import WeakbeamError, check_finite
from .models import ARCHITECTURES, build_network, count_parameters
from .normalise import LAYER_METHOD, Normalisation, apply_levels, normalise_frame
from ..patches import CLASS_NAMES as PATCH_CLASS_NAMES
from ..patches import STRONG_BEAM, WEAK_BEAM, grid_shape, pad_to_grid

if TYPE_CHECKING:
    from .scan_context import LayerContext

CLASS_NAMES = (PATCH_CLASS_NAMES[WEAK_BEAM], PATCH_CLASS_NAMES[STRONG_BEAM])  # network output 0, 1 -> classes 1, 2


class Classifier(nn.Module):
    """A WB/SB patch classifier: network, patch size, normalisation, class names, provenance.

    ``predict_frame(frame)`` works on one raw frame (rows, cols) on its own, so it can run live
    during an experiment. Labels use the patch-grid codes: 1 = weak beam, 2 = strong beam.
    """

    def __init__(
        self,
        net: nn.Module,
        arch: str,
        patch_size: int,
        hparams: dict[str, Any] | None = None,
        normalisation: Normalisation | None = None,
        class_names: tuple[str, ...] = CLASS_NAMES,
        provenance: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.net = net
        self.arch = arch
        self.patch_size = int(patch_size)
        self.hparams = dict(hparams or getattr(net, "hparams", {}))
        self.normalisation = normalisation or Normalisation()
        self.class_names = tuple(class_names)
        self.provenance = dict(provenance or {})

    # -- device -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The device the weights live on."""
        return next(self.net.parameters()).device

    def to(self, device: Any = None, *args, **kwargs) -> "Classifier":  # type: ignore[override]
        """Move to ``device`` (``auto``, ``cpu``, ``cuda``, ``mps``, or a torch.device)."""
        if isinstance(device, (str, torch.device)) or device is None:
            return super().to(resolve_device(device or "auto"), *args, **kwargs)
        return super().to(device, *args, **kwargs)

    @property
    def context(self) -> int:
        """Pixels of surroundings the network sees on each side of a patch."""
        return int(getattr(self.net, "context", 0))

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.net)

    def with_patch_size(self, patch_size: int) -> "Classifier":
        """A copy that classifies patches of ``patch_size``; the paper network cannot change it."""
        patch_size = int(patch_size)
        if patch_size == self.patch_size:
            return self
        if self.arch == "paper":
            raise WeakbeamError(
                f"this model ('paper' architecture) was trained for {self.patch_size}-pixel patches and "
                f"cannot classify {patch_size}-pixel patches: use --patch-size {self.patch_size} or a 'wbnet' model"
            )
        if patch_size < 8:
            raise WeakbeamError(f"patch size {patch_size} is too small (at least 8 pixels)")
        new = copy.deepcopy(self)
        new.patch_size = patch_size
        return new

    @property
    def scan_aware(self) -> bool:
        """True when the network reads each patch's rocking-curve context (core.classification.scan_context)."""
        return self.arch == "scanwb"

    # -- preparing inputs (shared with training) -------------------------------------------------
    def prepare_frame(self, frame: np.ndarray, what: str = "frame", levels: tuple[float, float] | None = None) -> np.ndarray:
        """Raw frame -> normalised (with the layer's ``levels`` (dark, span) when given, else the
        frame's own), padded to the patch grid (edge), plus ``context`` zeros."""
        if levels is None:
            x = normalise_frame(frame, self.normalisation, what)
        else:
            check_finite(np.asarray(frame), what)
            x = apply_levels(frame, levels[0], levels[1], self.normalisation)
        x = pad_to_grid(x, self.patch_size)
        m = self.context
        return np.pad(x, m) if m else x

    # -- inference -----------------------------------------------------------------------------
    @torch.inference_mode()
    def frame_prob_wb(self, frame: np.ndarray, what: str = "frame", levels: tuple[float, float] | None = None,
                      features: np.ndarray | None = None) -> np.ndarray:
        """Probability of weak beam per patch, float32 (grid_rows, grid_cols). Scan-aware models
        take the layer's ``levels`` and the frame's scan ``features`` (gr, gc, K)."""
        x = torch.from_numpy(self.prepare_frame(frame, what, levels))[None, None].to(self.device)
        if self.scan_aware:
            f = None if features is None else torch.from_numpy(np.array(features, np.float32)).to(self.device)
            logits = self.net.frame_logits(x, self.patch_size, f)
        else:
            logits = self.net.frame_logits(x, self.patch_size)
        prob = torch.softmax(logits.float(), dim=-1)[..., 0]
        return prob.cpu().numpy().astype(np.float32)

    def predict_frame(self, frame: np.ndarray, context: "LayerContext | None" = None,
                      index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One raw frame (rows, cols) -> (label uint8 (gr, gc), 1 = WB, 2 = SB; prob_wb float32).

        A scan-aware model uses frame ``index`` of the layer's ``context`` (core.classification.scan_context);
        without one it classifies from appearance alone (the frame's own levels)."""
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise WeakbeamError(f"predict_frame expects one frame (rows, cols), got shape {frame.shape}")
        label, prob = self.predict_frames(frame[None], context, None if index is None else [index])
        return label[0], prob[0]

    def predict_frames(self, frames: np.ndarray, context: "LayerContext | None" = None,
                       indices: "list[int] | np.ndarray | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """Frames (n, rows, cols) -> (label uint8 (n, gr, gc), prob_wb float32 (n, gr, gc)).

        For a scan-aware model, ``context`` is the layer's LayerContext and ``indices`` the frames'
        indices in it (default 0..n-1); single-frame models ignore both."""
        frames = np.asarray(frames) if not hasattr(frames, "compute") else frames
        if frames.ndim != 3:
            raise WeakbeamError(f"predict_frames expects frames (n, rows, cols), got shape {frames.shape}")
        gr, gc = grid_shape(frames.shape[1:], self.patch_size)
        prob = np.empty((frames.shape[0], gr, gc), np.float32)
        levels = features = None
        if self.scan_aware and context is not None:
            if context.patch_size != self.patch_size or context.curves.shape[1:] != (gr, gc):
                raise WeakbeamError(f"the scan context was taken for {context.patch_size}-pixel patches, the model uses {self.patch_size}")
            levels = context.levels
            idx = np.arange(frames.shape[0]) if indices is None else np.asarray(indices)
            features = context.features()[idx]
        was_training = self.training
        self.eval()
        try:
            for i in range(frames.shape[0]):
                f = None if features is None else features[i]
                prob[i] = self.frame_prob_wb(np.asarray(frames[i]), f"frame {i}", levels, f)
        finally:
            self.train(was_training)
        return labels_from_prob(prob), prob

    def describe(self) -> str:
        """One line for logs and the GUI."""
        return f"{self.arch} classifier, {self.patch_size}-pixel patches, {self.n_parameters} parameters"


def labels_from_prob(prob_wb: np.ndarray) -> np.ndarray:
    """Probability of weak beam -> labels (1 = WB where prob >= 0.5, else 2 = SB)."""
    return np.where(prob_wb >= 0.5, WEAK_BEAM, STRONG_BEAM).astype(np.uint8)


def build_classifier(arch: str = "scanwb", patch_size: int = 64, *, normalisation: Normalisation | None = None,
                     provenance: dict[str, Any] | None = None, **hp) -> Classifier:
    """A new, untrained classifier of architecture ``arch`` (``scanwb``, ``wbnet`` or ``paper``)."""
    if arch not in ARCHITECTURES:
        raise WeakbeamError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    if int(patch_size) < 8:
        raise WeakbeamError(f"patch size {patch_size} is too small (at least 8 pixels)")
    try:
        net = build_network(arch, int(patch_size), **hp)
    except (ValueError, TypeError) as exc:
        raise WeakbeamError(f"cannot build a {arch!r} network: {exc}") from None
    if normalisation is None and arch == "scanwb":
        normalisation = Normalisation(method=LAYER_METHOD)
    return Classifier(net, arch, int(patch_size), net.hparams, normalisation, CLASS_NAMES, provenance)
