"""Segmenting a dislocation map: line filters, thresholds and the clean-up.

The per-layer map of :mod:`.dislocation_map` becomes a mask here. ``adaptive`` and ``ridge`` use
hysteresis from a noise level measured where there are no lines (:mod:`.noise`), the same for
every layer of a scan; ``paper`` the published fixed threshold; then
a morphological clean-up (:func:`clean_mask`); ``adaptive`` last drops objects outshone by a bright
neighbour and trims the dim ends of its lines (:func:`finish_adaptive`). Pure functions of arrays
(they pickle to Dask).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, morphology

from ..errors import WeakbeamError
from .noise import (  # noqa: F401 (re-exported: the segmentation's noise level)
    LOWER_CAP,
    NOISE_BLOCK,
    block_spreads,
    local_spread,
    noise_contrast,
    noise_level,
    scan_noise_level,
)

if TYPE_CHECKING:
    from .params import ReconstructionParams

LINE_FILTERS = ("sato", "meijering", "frangi")


def _percentile(img: np.ndarray, q: float) -> float:
    """Fast percentile of a large image (a strided subsample beyond 1 Mpx)."""
    flat = img.ravel()
    if flat.size > 1_000_000:
        flat = flat[:: flat.size // 500_000]
    return float(np.percentile(flat, q))


def line_filter(image: np.ndarray, name: str = "sato", sigmas: tuple[float, ...] = (1.0, 2.0)) -> np.ndarray:
    """Multi-scale bright-line filter response (float32, >= 0)."""
    image = np.asarray(image, dtype=np.float32)
    if name == "sato":
        out = filters.sato(image, sigmas=sigmas, black_ridges=False, mode="reflect")
    elif name == "meijering":
        out = filters.meijering(image, sigmas=sigmas, black_ridges=False, mode="reflect")
    elif name == "frangi":
        out = filters.frangi(image, sigmas=sigmas, black_ridges=False, mode="reflect")
    else:
        raise WeakbeamError(f"unknown line filter {name!r} (choose one of {', '.join(LINE_FILTERS)})")
    return np.nan_to_num(np.asarray(out, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def data_threshold(response: np.ndarray, params: ReconstructionParams) -> float:
    """Threshold on a line-filter response, chosen from the data by ``params.threshold_rule``."""
    r = response.ravel()
    if r.size > 1_000_000:
        r = r[:: r.size // 500_000]
    if not np.any(r > 0):
        return math.inf
    rule = params.threshold_rule
    if rule == "otsu":
        return float(filters.threshold_otsu(r))
    if rule == "percentile":
        return float(np.percentile(r, params.threshold_percentile))
    if rule == "mad":
        med = float(np.median(r))
        mad = float(np.median(np.abs(r - med))) * 1.4826
        return med + params.mad_k * max(mad, 1e-12)
    return float(params.threshold * r.max())


def object_peaks(values: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """The largest of ``values`` in each of the ``n`` labelled objects of ``lab`` (float64, n);
    ``ndi.maximum`` with labels, but over the objects' pixels only (~30x faster on a 512^2 layer)."""
    inside = lab > 0
    peaks = np.full(n + 1, -np.inf)
    np.maximum.at(peaks, lab[inside], values[inside].astype(np.float64))
    return peaks[1:]


def object_medians(values: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """The median of ``values`` over each of the ``n`` labelled objects of ``lab``, float32 (n + 1,),
    0 at index 0 (the background; :func:`object_peaks` gives the largest instead)."""
    rr, cc = np.nonzero(lab)
    med = ndi.median(np.asarray(values)[rr, cc].astype(np.float32), labels=lab[rr, cc], index=np.arange(1, n + 1))
    return np.concatenate([[0.0], np.asarray(med, dtype=np.float32).reshape(-1)]).astype(np.float32)


def drop_faint_objects(objects: np.ndarray, contrast: np.ndarray, fraction: float) -> np.ndarray:
    """``objects`` less those whose peak ``contrast`` is below ``fraction`` of the typical line's:
    the 75th percentile, over the objects' pixels, of their object's peak (a size-weighted
    percentile, so long lines count more than dots). Faint blobs beside bright lines (strain
    lobes, noise) go; a layer whose objects are all faint keeps them."""
    if fraction <= 0 or not objects.any():
        return objects
    lab, n = ndi.label(objects, structure=np.ones((3, 3)))
    peaks = object_peaks(contrast, lab, n)
    typical = np.percentile(np.repeat(peaks, np.bincount(lab.ravel())[1:]), 75)
    return np.concatenate([[False], peaks >= fraction * typical])[lab]


#: ``hysteresis_faint``: a pixel above it seeds an object where it is bright in at least this many
#: weak-beam frames (:class:`.few_frames.FrameCount`): a faint line's image persists over
#: frames, a blob of noise in one frame does not.
FAINT_FRAMES = 2
#: Pixels: a faint-seeded object reaching this close to the field's edge is not kept (the
#: top-hat extrapolates the map there; on dfxm-geo's low-exposure scan an edge blob bright in two
#: frames).
FAINT_EDGE_PX = 3
#: Pixels (rows): a pixel passes ``object_fraction``'s floor where it or its Gaussian-weighted mean
#: along the rows does (docs/benchmarks.md step 21: dfxm-geo short range seed 1000, recall 0.36 ->
#: 0.62 end to end; 0.5 px gained less, smoothing both axes cost the walls' precision).
FLOOR_ROW_SIGMA = 0.7


def faint_seeds_on(params: ReconstructionParams, counts: np.ndarray | None) -> bool:
    """Whether :func:`hysteresis` seeds faint objects (``adaptive`` with the frame counts known and
    ``hysteresis_faint`` below ``hysteresis_high``). Those objects give points, not pieces: the
    mask that the drift and the lines use stays :func:`segment_map`'s, without counts (with
    them, the drift recorded on stacks without drift rose above 1 px; docs/benchmarks.md, step 10)."""
    return params.method == "adaptive" and counts is not None and params.hysteresis_faint < params.hysteresis_high


def hysteresis(contrast: np.ndarray, params: ReconstructionParams, counts: np.ndarray | None = None) -> np.ndarray:
    """The objects of pixels above ``hysteresis_low`` (4-connected, as
    ``skimage.filters.apply_hysteresis_threshold``) that hold a pixel above ``hysteresis_high``;
    with ``counts`` (per pixel, the weak-beam frames in which it is bright,
    :class:`.few_frames.FrameCount`) also those that hold a pixel above ``hysteresis_faint``
    bright in at least ``FAINT_FRAMES`` frames and stay ``FAINT_EDGE_PX`` clear of the field's
    edge: at low exposure a faint line peaks at 7-12 noise units, and the single-frame blobs of
    the same brightness do not persist (issue 10, docs/reconstruction.md step 6)."""
    return _hysteresis(contrast, params, counts)[0]


def _hysteresis(contrast: np.ndarray, params: ReconstructionParams,
                counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`hysteresis` and the pixels of the objects only the faint seeds started (None: none)."""
    low, high = params.hysteresis_low, params.hysteresis_high
    if counts is None or params.hysteresis_faint >= high:
        return filters.apply_hysteresis_threshold(contrast, low, high), None
    lab, n = ndi.label(contrast > low)
    keep = np.zeros(n + 1, dtype=bool)
    keep[lab[(contrast > params.hysteresis_faint) & (np.asarray(counts) >= FAINT_FRAMES)]] = True
    e = FAINT_EDGE_PX
    keep[np.concatenate([lab[:e].ravel(), lab[-e:].ravel(), lab[:, :e].ravel(), lab[:, -e:].ravel()])] = False
    strong = np.zeros(n + 1, dtype=bool)
    strong[lab[contrast > high]] = True
    keep[0] = strong[0] = False
    faint = keep & ~strong
    return (keep | strong)[lab], faint[lab] if faint.any() else None


def adaptive_mask(image: np.ndarray, params: ReconstructionParams, noise: tuple[float, float] | None = None,
                  counts: np.ndarray | None = None) -> np.ndarray:
    """Segmentation of a dislocation (or line-filtered) map from a noise level (before clean-up).

    ``noise`` (centre, spread): the scan's (:func:`scan_noise_level`), or None for this map's own
    (:func:`noise_level`). Hysteresis: objects reach ``centre + hysteresis_high x spread`` and grow
    over pixels above ``centre + hysteresis_low x spread``, the spread being at least the local one
    (:func:`local_spread`); with ``counts`` (the weak-beam frames in which each pixel is bright)
    faint objects persisting over frames seed too (:func:`hysteresis`). Within each object only
    pixels above ``object_fraction`` of its local peak (its brightest pixel within the top-hat's
    window) and above half that fraction of its whole peak (above the centre) are kept (a pixel
    passes where it or its mean along the rows does, ``FLOOR_ROW_SIGMA``). Then objects fainter
    than ``min_peak_fraction`` of the layer's typical line are dropped (:func:`drop_faint_objects`).
    """
    return _adaptive_mask(image, params, noise, counts)[0]


def _adaptive_mask(image: np.ndarray, params: ReconstructionParams, noise: tuple[float, float] | None,
                   counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`adaptive_mask` and the objects only the faint seeds started (:func:`_hysteresis`)."""
    centre, spread = noise if noise is not None else noise_level(image)
    if not spread > 0:
        return np.zeros(np.shape(image), dtype=bool), None
    contrast = noise_contrast(image, (centre, spread))
    objects, faint = _hysteresis(contrast, params, counts)
    if params.object_fraction <= 0 or not objects.any():
        return drop_faint_objects(objects, contrast, params.min_peak_fraction), faint
    # the local peak: the object's brightest pixel within a window as wide as the top-hat's (square
    # in micrometres), so a faint line joined to a bright blob keeps its own core
    w = max(params.background_size, 3)
    aspect = params.pixel_aspect or 1.0
    local = ndi.maximum_filter(np.where(objects, image, np.float32(centre)), size=(w, max(3, int(round(w / aspect)))))
    # a thin line running steeply across DFXM's wide columns alternates bright and dim pixels along
    # the rows; tested pixel by pixel, it fell apart into dots that the size rule removed
    test = np.maximum(image, ndi.gaussian_filter(np.asarray(image, dtype=np.float32), (FLOOR_ROW_SIGMA, 0.0)))
    lab, n = ndi.label(objects, structure=np.ones((3, 3)))
    peaks = object_peaks(image, lab, n) - centre
    whole = np.concatenate([[np.inf], peaks])[lab]
    floor = centre + params.object_fraction * np.maximum(local - centre, 0.5 * whole)
    return drop_faint_objects(objects & (test >= floor), contrast, params.min_peak_fraction), faint


_NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]


def dim_skeleton_ends(skeleton: np.ndarray, value: np.ndarray, fraction: float) -> np.ndarray:
    """The points of ``skeleton`` (bool) peeled from its ends inward while their ``value`` is below
    ``fraction`` of their object's peak (8-connected objects); a peel stops at the first brighter
    point, so dim stretches between bright ones stay. Bool, the skeleton's shape."""
    rr, cc = np.nonzero(skeleton)
    removed = np.zeros(skeleton.shape, dtype=bool)
    if not len(rr) or fraction <= 0:
        return removed
    lab, n = ndi.label(skeleton, structure=np.ones((3, 3)))
    v = value[rr, cc].astype(np.float64)
    peaks = np.full(n + 1, -np.inf)
    np.maximum.at(peaks, lab[rr, cc], v)
    dim = v < fraction * peaks[lab[rr, cc]]
    if not dim.any():
        return removed
    index = np.full((skeleton.shape[0] + 2, skeleton.shape[1] + 2), -1, dtype=np.int64)
    index[rr + 1, cc + 1] = np.arange(len(rr))
    nbrs = np.stack([index[rr + 1 + dr, cc + 1 + dc] for dr, dc in _NEIGHBOURS], axis=1)  # (points, 8), -1: none
    degree = (nbrs >= 0).sum(axis=1)
    gone = np.zeros(len(rr), dtype=bool)
    todo = list(np.flatnonzero(dim & (degree <= 1)))
    while todo:
        i = todo.pop()
        if gone[i]:
            continue
        gone[i] = True
        for j in nbrs[i][nbrs[i] >= 0]:
            degree[j] -= 1
            if dim[j] and not gone[j] and degree[j] <= 1:
                todo.append(j)
    removed[rr[gone], cc[gone]] = True
    return removed


def trim_dim_ends(mask: np.ndarray, image: np.ndarray, fraction: float) -> np.ndarray:
    """``mask`` less the dim ends of its objects' centre lines (:func:`dim_skeleton_ends` of its
    skeleton, on the map's 3 x 3 maximum) and the mask pixels nearest them. The image of a line
    crossing the slab at an angle is longer than its part inside the slab and dims towards its
    ends, outside it; a dim stretch between bright ones (a line whose brightness varies) is kept."""
    if fraction <= 0 or not mask.any():
        return mask
    skel = morphology.skeletonize(mask)
    rr, cc = np.nonzero(skel)
    padded = np.pad(np.asarray(image, dtype=np.float32), 1, mode="edge")
    value = np.zeros(mask.shape, dtype=np.float32)
    value[rr, cc] = np.max([padded[rr + 1 + dr, cc + 1 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
    removed = dim_skeleton_ends(skel, value, fraction)
    if not removed.any():
        return mask
    out = mask.copy()
    lab, _ = ndi.label(mask, structure=np.ones((3, 3)))
    objects = ndi.find_objects(lab)
    for k in np.unique(lab[removed]):  # per object touched: its pixels nearest a removed point
        box = objects[k - 1]
        _, (ir, ic) = ndi.distance_transform_edt(~skel[box], return_indices=True)
        out[box] &= ~((lab[box] == k) & removed[box][ir, ic])
    return out


def drop_outshone_objects(mask: np.ndarray, image: np.ndarray, fraction: float, window: tuple[int, int],
                          keep_below: int = 0) -> np.ndarray:
    """``mask`` less the objects whose peak on ``image`` is below ``fraction`` of the brightest
    mask pixel within ``window`` (rows, cols) of them: faint strain lobes and edge contrast
    beside a bright line (:func:`drop_faint_objects` compares with the whole layer instead).
    Objects of fewer than ``keep_below`` pixels stay: dots, the short images of lines crossing
    the slab steeply, fainter than a line lying in it."""
    if fraction <= 0 or not mask.any():
        return mask
    image = np.asarray(image, dtype=np.float32)
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    own = object_peaks(image, lab, n)
    near = object_peaks(ndi.maximum_filter(np.where(mask, image, -np.inf), size=window), lab, n)
    dots = np.bincount(lab.ravel(), minlength=n + 1)[1:] < keep_below
    return mask & np.concatenate([[False], (own >= fraction * near) | dots])[lab]


MIN_AREA = 5  # row pixels squared: the smallest object ``adaptive`` keeps, at the sample
DOT_AREA = 16  # row pixels squared: ``adaptive``'s objects below it are dots, never outshone


def area_pixels(area: float, params: ReconstructionParams) -> int:
    """Pixels covering ``area`` square row pixels at the sample (a column pixel is
    ``pixel_aspect`` row pixels wide), at least 1."""
    return max(1, math.ceil(area / (params.pixel_aspect or 1.0) - 1e-9))


def min_object_size(params: ReconstructionParams) -> int:
    """The ``min_size`` default (None) resolved per method, pixels: 22 for ``paper`` (as published),
    5 for ``ridge`` and ``manual``; ``adaptive``: ``MIN_AREA`` square row pixels at the sample
    (:func:`area_pixels`: 2 pixels at DFXM's ~3x wider columns), because a 5-pixel minimum is
    ~16 square row pixels there, more than the dot of a line crossing the slab steeply."""
    if params.min_size is not None:
        return params.min_size
    if params.method == "adaptive":
        return area_pixels(MIN_AREA, params)
    return 22 if params.method == "paper" else 5


def clean_mask(mask: np.ndarray, params: ReconstructionParams) -> np.ndarray:
    """Opening, closing, hole filling and removal of objects smaller than ``min_size``
    (:func:`min_object_size`)."""
    mask = np.asarray(mask, dtype=bool)
    if params.opening_radius > 0:
        mask = ndi.binary_opening(mask, structure=morphology.disk(params.opening_radius))
    if params.closing_radius > 0:
        mask = ndi.binary_closing(mask, structure=morphology.disk(params.closing_radius), border_value=0)
    if params.fill_holes:
        mask = ndi.binary_fill_holes(mask)
    min_size = min_object_size(params)
    if min_size > 1 and mask.any():
        lab, n = ndi.label(mask, structure=np.ones((3, 3)))
        sizes = np.bincount(lab.ravel())
        small = sizes < min_size
        small[0] = False
        mask = mask & ~small[lab]
    return mask


def remove_background(image: np.ndarray, size: int, aspect: float = 1.0) -> np.ndarray:
    """White top-hat: ``image`` minus its grey opening by a rectangle ``size`` pixels tall and
    ``size / aspect`` wide (``aspect``: column pixel / row pixel, so the rectangle is square at the
    sample), which removes smooth hills wider than it (strong-beam leftovers, mosaic, strain lobes)
    and keeps narrower features (dislocations); 0 keeps the image."""
    if size <= 1:
        return np.asarray(image, dtype=np.float32)
    image = np.asarray(image, dtype=np.float32)
    sz = (size, max(3, int(round(size / aspect))) if aspect > 0 else size)
    # Past the edges the map goes on rising where it rises towards an edge (odd reflection) and
    # comes back up where it falls (even reflection): a hill cut by the field's edge is a ramp there,
    # which the opening then removes, instead of a bright edge left as a false line.
    pad = min(size, *image.shape) - 1
    if pad < 1:
        return image - ndi.grey_opening(image, size=sz, mode="nearest")
    big = np.maximum(np.pad(image, pad, mode="reflect", reflect_type="odd"), np.pad(image, pad, mode="reflect"))
    return image - ndi.grey_opening(big, size=sz)[pad:-pad, pad:-pad]


def finish_adaptive(mask: np.ndarray, image: np.ndarray, params: ReconstructionParams) -> np.ndarray:
    """The cleaned ``adaptive`` mask less objects outshone by a bright neighbour
    (:func:`drop_outshone_objects`, ``neighbour_fraction`` within ``neighbour_window`` pixels,
    square in micrometres; dots below ``DOT_AREA`` square row pixels stay) and less the dim ends
    of its lines (:func:`trim_dim_ends`, ``end_fraction``)."""
    w = params.neighbour_window
    window = (w, max(3, int(round(w / (params.pixel_aspect or 1.0)))))
    mask = drop_outshone_objects(mask, image, params.neighbour_fraction, window, area_pixels(DOT_AREA, params))
    return trim_dim_ends(mask, image, params.end_fraction)


def uses_scan_noise(params: ReconstructionParams) -> bool:
    """Whether the method's threshold comes from the noise level (shared by the scan's layers)."""
    return params.method == "adaptive" or (params.method == "ridge" and params.threshold_rule == "hysteresis")


def segment_map(image: np.ndarray, params: ReconstructionParams, noise: tuple[float, float] | None = None) -> np.ndarray:
    """The cleaned mask of a layer's map (what :func:`reconstruct_layer` returns as its mask;
    ``adaptive``: with :func:`finish_adaptive`'s precision rules).

    ``noise``: the scan's noise level for the noise-based methods (:func:`uses_scan_noise`); None
    uses the layer's own (a provisional mask until the whole scan is known).
    """
    if params.method == "paper":
        return clean_mask(image >= params.threshold, params)
    if params.method == "manual":
        return clean_mask(image >= params.manual_threshold, params)
    if params.method == "adaptive":
        return _adaptive(image, params, noise)[0]
    if uses_scan_noise(params):
        return clean_mask(adaptive_mask(image, params, noise), params)
    return clean_mask(image >= data_threshold(image, params), params)


def reached_pixels(mask: np.ndarray, raw: np.ndarray, params: ReconstructionParams) -> np.ndarray:
    """``mask`` less, in each of its objects that holds two or more separate lines (parts of
    ``raw``, the thresholds' mask before the clean-up, of at least ``DOT_AREA`` square row pixels
    each), the pixels only the clean-up's closing (and hole filling) added. The closing bridges
    one-pixel gaps of a line for the tracing, but it also joins lines one column apart (a wall's
    dislocations) into one blob whose centre line runs between them; the points are the centre
    lines of these pixels. Other objects stay whole (a noisy blob's holes and notches would give
    its centre line spurs)."""
    if params.closing_radius <= 0 or not mask.any():
        return mask
    lab, _ = ndi.label(mask, structure=np.ones((3, 3)))
    reached = mask & np.asarray(raw, dtype=bool)
    parts, n = ndi.label(reached, structure=np.ones((3, 3)))
    big = np.flatnonzero(np.bincount(parts.ravel(), minlength=n + 1)[1:] >= area_pixels(DOT_AREA, params)) + 1
    if len(big) < 2:
        return mask
    home = np.zeros(n + 1, dtype=np.int64)
    home[parts[reached]] = lab[reached]  # the object each part lies in
    split = np.flatnonzero(np.bincount(home[big]) >= 2)
    if not len(split):
        return mask
    return mask & ~(np.isin(lab, split) & ~reached)


def segment_layer(image: np.ndarray, params: ReconstructionParams,
                  noise: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A layer's cleaned mask (:func:`segment_map`: the tracing's input) and skeleton (the
    points): the skeleton of the mask, for ``adaptive`` of its :func:`reached_pixels`."""
    if params.method != "adaptive":
        mask = segment_map(image, params, noise)
        return mask, morphology.skeletonize(mask)
    mask, raw, _ = _adaptive(image, params, noise)
    return mask, morphology.skeletonize(reached_pixels(mask, raw, params))


def segment_points(image: np.ndarray, params: ReconstructionParams, noise: tuple[float, float] | None = None,
                   counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask, points' mask, skeleton) of a layer. Where :func:`hysteresis` seeds faint objects from
    the frame ``counts`` (:func:`faint_seeds_on`), the points' mask holds them and the skeleton
    (the points) is its own; the mask (the drift's and the lines' input) is :func:`segment_layer`'s
    without them, segmented a second time only where a faint object is in the finished mask
    (elsewhere the two differ at most where a dropped faint object moved a neighbour's
    thresholds: the layer's typical line, the local peak). Else the mask twice and its skeleton."""
    if not faint_seeds_on(params, counts):
        mask, skel = segment_layer(image, params, noise)
        return mask, mask, skel
    full, raw, added = _adaptive(image, params, noise, counts)
    mask = _adaptive(image, params, noise)[0] if added else full
    return mask, full, morphology.skeletonize(reached_pixels(full, raw, params))


def _adaptive(image: np.ndarray, params: ReconstructionParams, noise: tuple[float, float] | None,
              counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """``adaptive``'s finished mask, its thresholds' mask before the clean-up and whether an
    object that only the faint seeds started is in the finished mask (most are dropped as
    faint beside the layer's lines, ``min_peak_fraction``, ``neighbour_fraction``)."""
    raw, faint = _adaptive_mask(image, params, noise, counts)
    mask = finish_adaptive(clean_mask(raw, params), image, params)
    return mask, raw, faint is not None and bool((mask & faint).any())
