"""The parameters of a reconstruction: :class:`ReconstructionParams`, which documents each one.

A frozen dataclass, checked on creation (one-line :class:`~..errors.WeakbeamError` naming the
parameter), that pickles to Dask workers and round-trips through a file's attributes
(:meth:`~ReconstructionParams.to_dict`, :meth:`~ReconstructionParams.from_dict`). The methods
themselves: :mod:`.dislocation_map` (one layer), :mod:`.reconstruct` (a scan).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import WeakbeamError
from .drift_reference import check_box
from .segmentation import LINE_FILTERS

METHODS = ("adaptive", "paper", "ridge", "manual")
THRESHOLD_RULES = ("hysteresis", "otsu", "percentile", "mad", "fixed")


@dataclass(frozen=True)
class ReconstructionParams:
    """Parameters of the per-layer reconstruction; the defaults suit 30-50 nm pixels.

    Attributes
    ----------
    method : str
        ``"adaptive"`` (the paper's normalised WB sum, thresholded from the data: hysteresis from
        the scan's noise level, then a fraction of each object's own peak), ``"paper"`` (the published
        normalise-sum-threshold pipeline, fixed threshold), ``"ridge"`` (normalised sum, then a line
        filter and a data-driven threshold) or ``"manual"`` (one WB frame per layer, the paper's
        manual reference, :func:`manual_layer`).
    dark_level : float | None
        Detector dark level in ADU subtracted from every frame; None estimates it per layer as the
        median of the darkest frame.
    background : str
        ``"min"`` subtracts each pixel's minimum over the layer's frames (static background, hot
        pixels); ``"none"`` keeps only the dark-level subtraction.
    detector_defects : bool
        ``adaptive`` and ``ridge``: find the camera's hot pixels and the zingers (cosmic rays) in
        each layer's frames and repair them before the map (a hot pixel loses its offset, a
        zinger takes its neighbours' mean; :mod:`.detector_defects`). ``paper`` and ``manual``
        read the frames as published.
    patch_size : int | None
        Patch size of the labels; None infers it from the label grid and the frame shape.
    use_ambiguous : bool
        Whether unclassified patches (label 0) count as WB (True) or are replaced like SB (False).
    band_frames : bool
        ``adaptive`` and ``ridge`` on a classifier's probabilities: in each patch whose measured
        rocking curve the scan cuts before one tail, the frames beyond the half maximum on the
        side that has its tail count as WB too, in patches without non-diffracting pixels
        (:mod:`.band_frames`: there those frames, which the classifier is unsure of, hold most of
        a line's image). Class labels (hand labels, the truth) are used as they are.
    curve_cap : bool
        ``adaptive`` and ``ridge`` on a classifier's probabilities, in patches without
        non-diffracting pixels: a patch-frame's WB weight is at most where the patch's own
        measured rocking curve puts it between the half maximum (0) and the weak-beam border (1)
        (:func:`.band_frames.curve_cap`); the band frames above are counted after it.
    local_curve_px : int
        ``adaptive`` and ``ridge`` on a classifier's probabilities: each pixel's WB weight is
        also capped by the rocking curve of its own ``local_curve_px`` x ``local_curve_px``
        block (0 within the block's half
        maximum, 1 from its weak-beam border, blended between block centres; not in blocks the
        scan cuts before one tail, nor off the grain; :func:`.band_frames.local_curve_bounds`):
        weak beam is the tails of the local curve, which moves within a patch where sub-grains,
        rotation fields or a grain's edge tilt the lattice. Class labels (hand labels, the truth)
        are used as they are. 0 turns it off (and ``tail_floor``).
    tail_floor : bool
        With ``local_curve_px``: each pixel's WB weight is at least 1 where its block's own curve
        puts the frame in a tail (beyond the weak-beam border; blended between block centres, not
        in blocks the scan cuts before a tail, nor off the grain), whatever its patch's
        probability: a patch whose sub-grains peak in different frames is called strong beam by
        its brightest part.
    frame_norm : str
        Per-frame normalisation of ``adaptive`` and ``ridge``: ``"noise"`` (each frame in units of
        its own noise, :func:`noise_level` of its WB pixels: minus (centre + spread), / spread,
        clipped at 0; independent of how many lines the frame holds) or ``"percentile"`` (the
        paper's: minus (mean + std), clipped, / ``frame_percentile``). ``paper`` always uses the
        paper's.
    frame_percentile : float
        Percentile each frame is divided by after the (mean + std) subtraction (paper: 98).
    background_size : int
        ``adaptive``: the summed map minus its grey opening by a square of this side (pixels): a
        white top-hat that removes smooth hills wider than it (strong-beam leftovers) and keeps
        dislocations (narrower); 0 or 1 skips it.
    pixel_aspect : float | None
        Column pixel / row pixel at the sample (DFXM: 1 / sin 2theta), so that the top-hat is
        square in micrometres; None: 1 here, and the scan's (from its 2theta) when a scan is
        reconstructed (:func:`~.reconstruct.prepare_params`).
    sum_percentile : float
        Percentile the summed map is divided by (paper: 99).
    threshold : float
        ``paper``: threshold on the normalised sum (paper: 0.6-0.7). With ``threshold_rule="fixed"``
        it is also the threshold on the line-filtered map, as a fraction of its maximum.
    line_filter : str
        ``"sato"``, ``"meijering"`` or ``"frangi"`` (scikit-image), for ``ridge`` and ``manual``.
    sigmas : tuple[float, ...]
        Line-filter scales in pixels (about the half width of the lines to find).
    threshold_rule : str
        How ``ridge`` picks its threshold on the filtered map: ``"hysteresis"`` (as ``adaptive``),
        ``"otsu"``, ``"percentile"`` (keep the top ``100 - threshold_percentile`` %), ``"mad"``
        (median + ``mad_k`` x 1.4826 MAD) or ``"fixed"`` (``threshold`` x max).
    threshold_percentile, mad_k : float
        Parameters of the ``percentile`` and ``mad`` rules.
    background_percentile : float
        Kept for old parameter files; no longer used.
    hysteresis_low, hysteresis_high : float
        ``adaptive`` and ``ridge`` (hysteresis rule): thresholds in noise units above the noise
        centre (:func:`noise_level`, measured where there are no lines and pooled over the
        scan's layers): pixels above ``high`` seed objects that grow over pixels above ``low``.
    hysteresis_faint : float
        ``adaptive``: pixels above this many noise units seed objects too (below
        ``hysteresis_high``: a faint line's image) where they are bright in at least
        ``FAINT_FRAMES`` (2) weak-beam frames (:mod:`.few_frames`), in objects that stay clear
        of the field's edge (:func:`.segmentation.hysteresis`): a faint line persists over
        frames, a one-frame blob of noise does not. They give points, not pieces: the stored
        mask (drift, lines) is the plain hysteresis's (:func:`.segmentation.segment_points`).
        At or above ``hysteresis_high``: off.
    object_fraction : float
        ``adaptive``: within each object only pixels above this fraction of its local peak (its
        brightest pixel within ``background_size`` pixels) and above half this fraction of its whole
        peak (above the noise centre) are kept, so bright and faint dislocations get masks of
        similar, narrow width, and a faint line joined to a bright blob keeps its core. A pixel
        passes where it or its mean along the rows does (``segmentation.FLOOR_ROW_SIGMA``).
    min_peak_fraction : float
        ``adaptive`` (and ``ridge``'s hysteresis rule): objects whose peak contrast (noise units)
        is below this fraction of the layer's typical line contrast (the 75th percentile over the
        objects' pixels of their object's peak) are dropped: faint blobs beside bright lines
        (strain lobes, noise); 0 keeps every object.
    neighbour_fraction : float
        ``adaptive``: objects whose peak on the map is below this fraction of the brightest mask
        pixel within ``neighbour_window`` of them are dropped (faint lobes and edge contrast
        beside a bright line), but for dots (under ``segmentation.DOT_AREA`` square row pixels at
        the sample: steep lines); 0 keeps them.
    neighbour_window : int
        Side (pixels along the rows; square in micrometres) of that neighbourhood.
    end_fraction : float
        ``adaptive``: each object's centre line is peeled from its ends inward while the map there
        is below this fraction of the object's peak, with the mask pixels nearest the peeled points
        (the dim ends of the image of a line crossing the slab at an angle, outside the slab);
        0 keeps them.
    tail_end_fraction : float
        ``adaptive``, at the scan's finish (where the rocking curve's tails were kept): each
        centre line is peeled from its ends inward while the balance of its two tails there
        (the weaker over the stronger, each scaled to the object's own) is below this fraction of
        the object's best (:mod:`.tail_ends`: the image of a line just outside the slab shows in
        one tail only); 0 keeps them.
    lobe_dots : bool
        ``adaptive``, at the scan's finish: a compact centre line whose two tails' centroids lie
        at its two ends is a steep line's pair of strain lobes, and keeps only its middle's
        points (:mod:`.lobe_dots`); False keeps every point.
    few_frame_fraction : float
        ``adaptive``, at the scan's finish: each centre line is peeled from its ends inward while
        the number of weak-beam frames in which it is brighter than ``hysteresis_low`` there is
        below this fraction of the line's median (:mod:`.few_frames`: a line's core in the slab
        persists over several frames of both tails, its image outside the slab over fewer, a
        noise speck over one); 0 keeps them.
    one_tail_share : float
        ``adaptive``, at the scan's finish: a centre line whose weaker tail holds less than this
        share of its stronger (summed around the line) is seen in one tail of the rocking curve
        only, and gives no points unless it is bright in many of the weak-beam frames
        (:func:`.tail_ends.drop_one_tail_lines`: a line outside the slab, or a rotation
        contour); 0 keeps them.
    few_frames_share : float
        ``adaptive``, at the scan's finish: a centre line whose median point is bright in at
        least one but at most this share of the layer's weak-beam frames gives no points
        (:func:`.few_frames.drop_few_frame_lines`: a rotation contour sweeping across the field
        as the angle turns, or noise); 0 keeps them.
    opening_radius, closing_radius : int
        Radii (pixels) of the binary opening and closing; 0 skips the step. No opening by
        default: with the anisotropic pixels of DFXM (x = pixel / sin 2theta, 3x y at 2theta ~
        18 deg) a line one column wide is real, and an opening erased it (dfxm-geo benchmark:
        recall 0.12 -> 0.91 on the beam fall-off scan without it).
    fill_holes : bool
        Fill holes enclosed by the mask.
    min_size : int | None
        Connected components smaller than this (pixels) are removed; None: 22 for ``paper`` (as
        published), 5 for ``ridge`` and ``manual``, and for ``adaptive`` 5 square row pixels at
        the sample (2 pixels at DFXM's ~3x wider columns; weak-beam images of steep dislocations
        are small dots: :func:`.segmentation.min_object_size`).
    points : str
        Which voxels make the point cloud: ``"skeleton"`` (the per-layer centre lines, default:
        a line's points, not its width) or ``"mask"`` (every segmented voxel, as the paper's
        manual reference).
    intensity_floor : float
        ``manual``: ADU subtracted (and floored at 0) from the picked frame (paper: 110).
    manual_threshold : float
        ``manual``: threshold on the line-filter response normalised to its 99.9th percentile
        (paper: 0.1 on the vesselness map).
    manual_tail_fraction : float
        ``manual`` default frame rule: frames whose mean intensity (above the rocking curve's
        minimum) is at most this fraction of the peak's count as weak beam; the one nearest the
        peak is picked (see :func:`pick_manual_frame`).
    correct_drift : bool
        Correct points and lines for the drift between layers (always recorded: from the lines'
        continuity, :func:`.drift.drift_and_lines`, up to its linear trend, which no data of the
        layers can tell from inclined structure; or the registration of the layers where they
        hold the same content). Off by default: without drift the estimate is a fraction of a
        pixel on most simulated stacks but not all (docs/benchmarks.md).
    max_drift_px : float
        Largest shift between two consecutive layers accepted from the registration (pixels);
        beyond it the registration counts as failed and the step as 0. The lines' second
        differences are searched up to twice this.
    drift_reference : tuple of int or None
        A box (row0, row1, col0, col1: rows row0 to row1 - 1, columns col0 to col1 - 1 of the
        frames) that holds a static non-diffracting feature in every layer (a fiducial marker, a
        pore, the sample's edge): the drift is registered on it, trend included
        (:mod:`.drift_reference`), instead of from the lines. None: from the lines.
    trace : bool
        Trace the mask into 3D dislocation lines (:mod:`.lines`).
    link_distance_um : float | None
        Tracing: the largest in-plane distance (um) from a line's expected position to a piece in
        the next layer; None: 2 x the layer spacing.
    """

    method: str = "adaptive"
    dark_level: float | None = None
    background: str = "none"
    detector_defects: bool = True
    patch_size: int | None = None
    use_ambiguous: bool = True
    band_frames: bool = True
    curve_cap: bool = True
    local_curve_px: int = 8
    tail_floor: bool = True
    frame_norm: str = "noise"
    background_size: int = 15
    pixel_aspect: float | None = None
    frame_percentile: float = 98.0
    sum_percentile: float = 99.0
    threshold: float = 0.65
    line_filter: str = "sato"
    sigmas: tuple[float, ...] = (1.0, 2.0)
    threshold_rule: str = "hysteresis"
    threshold_percentile: float = 97.0
    mad_k: float = 6.0
    background_percentile: float = 90.0
    hysteresis_low: float = 4.0
    hysteresis_high: float = 12.0
    hysteresis_faint: float = 8.0
    object_fraction: float = 0.2
    min_peak_fraction: float = 0.05
    neighbour_fraction: float = 0.25
    neighbour_window: int = 121
    end_fraction: float = 0.3
    tail_end_fraction: float = 0.1
    few_frame_fraction: float = 0.7
    one_tail_share: float = 0.05
    few_frames_share: float = 0.08
    lobe_dots: bool = True
    opening_radius: int = 0
    closing_radius: int = 1
    fill_holes: bool = True
    min_size: int | None = None
    points: str = "skeleton"
    intensity_floor: float = 110.0
    manual_threshold: float = 0.1
    manual_tail_fraction: float = 0.05
    correct_drift: bool = False
    max_drift_px: float = 20.0
    drift_reference: tuple[int, int, int, int] | None = None
    trace: bool = True
    link_distance_um: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise WeakbeamError(f"unknown reconstruction method {self.method!r} (choose one of {', '.join(METHODS)})")
        if self.line_filter not in LINE_FILTERS:
            raise WeakbeamError(f"unknown line filter {self.line_filter!r} (choose one of {', '.join(LINE_FILTERS)})")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise WeakbeamError(
                f"unknown threshold rule {self.threshold_rule!r} (choose one of {', '.join(THRESHOLD_RULES)})"
            )
        if self.local_curve_px < 0 or self.local_curve_px == 1:
            raise WeakbeamError(f"local_curve_px must be 0 (off) or >= 2 pixels, got {self.local_curve_px}")
        if self.background_size < 0:
            raise WeakbeamError(f"background_size must be >= 0 pixels, got {self.background_size}")
        if self.frame_norm not in ("noise", "percentile"):
            raise WeakbeamError(f"unknown frame normalisation {self.frame_norm!r} (choose noise or percentile)")
        if self.points not in ("mask", "skeleton"):
            raise WeakbeamError(f"unknown point-cloud source {self.points!r} (choose mask or skeleton)")
        if not 0 < self.background_percentile < 100:
            raise WeakbeamError(f"background_percentile must lie in (0, 100), got {self.background_percentile}")
        if not 0 <= self.object_fraction < 1 or self.hysteresis_low <= 0 or self.hysteresis_high < self.hysteresis_low:
            raise WeakbeamError("need 0 <= object_fraction < 1 and 0 < hysteresis_low <= hysteresis_high")
        if not self.hysteresis_faint > 0:
            raise WeakbeamError(f"hysteresis_faint must be > 0 noise units, got {self.hysteresis_faint}")
        if not 0 <= self.min_peak_fraction < 1:
            raise WeakbeamError(f"min_peak_fraction must lie in [0, 1), got {self.min_peak_fraction}")
        for name in ("neighbour_fraction", "end_fraction", "tail_end_fraction", "few_frame_fraction",
                     "one_tail_share", "few_frames_share"):
            if not 0 <= getattr(self, name) < 1:
                raise WeakbeamError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.neighbour_window < 1:
            raise WeakbeamError(f"neighbour_window must be >= 1 pixel, got {self.neighbour_window}")
        if self.background not in ("min", "none"):
            raise WeakbeamError(f"unknown background mode {self.background!r} (choose min or none)")
        if not 0 < self.frame_percentile <= 100 or not 0 < self.sum_percentile <= 100:
            raise WeakbeamError("percentiles must lie in (0, 100]")
        if self.threshold <= 0:
            raise WeakbeamError(f"threshold must be > 0, got {self.threshold}")
        if not self.sigmas or min(self.sigmas) <= 0:
            raise WeakbeamError(f"line-filter sigmas must be > 0, got {self.sigmas}")
        if self.min_size is not None and self.min_size < 0:
            raise WeakbeamError(f"min_size must be >= 0 pixels, got {self.min_size}")
        if self.link_distance_um is not None and not (math.isfinite(self.link_distance_um) and self.link_distance_um > 0):
            raise WeakbeamError(f"link_distance_um must be a distance > 0 micrometres, got {self.link_distance_um}")
        if not self.max_drift_px >= 0:
            raise WeakbeamError(f"max_drift_px must be >= 0 pixels, got {self.max_drift_px}")
        if self.drift_reference is not None:
            object.__setattr__(self, "drift_reference", check_box(self.drift_reference))
        if self.pixel_aspect is not None and not (math.isfinite(self.pixel_aspect) and self.pixel_aspect > 0):
            raise WeakbeamError(f"pixel_aspect must be a ratio > 0, got {self.pixel_aspect}")
        if self.opening_radius < 0 or self.closing_radius < 0:
            raise WeakbeamError("opening and closing radii must be >= 0 pixels (0 skips the step)")
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for file attributes and Dask)."""
        d = asdict(self)
        d["sigmas"] = list(d["sigmas"])
        if d["drift_reference"] is not None:
            d["drift_reference"] = list(d["drift_reference"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReconstructionParams":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "sigmas" in known:
            known["sigmas"] = tuple(np.atleast_1d(known["sigmas"]).tolist())
        for name in ("dark_level", "link_distance_um", "pixel_aspect"):
            if known.get(name) is not None and not np.isfinite(known[name]):
                known[name] = None
        return cls(**known)
