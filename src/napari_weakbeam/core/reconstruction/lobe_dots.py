"""A steep line's dot seen as its two strain lobes: its points are its centre's.

Where a line crosses the slab steeply, its weak-beam image is a dot made of the two lobes of its
strain field, one in each tail of the rocking curve, on either side of the core (:mod:`.tails`).
The pair of lobes is longer than the line's own trace in the slab, so the dot's centre line runs
along the lobes' axis, and its ends, out in the lobes, lie 4-6 px from the line. On our simulator's
low-exposure benchmark scan, 59 of the 77 false points lay in such dots, which are 8-12 points
long with their two tails' centroids 8.5-9.7 px apart along them; the true points lie within 4 px
of the dot's centre.

:func:`keep_lobe_dot_centres` keeps, in each compact centre line (at most ``DOT_POINTS`` points,
alone in its object of the mask) whose two tails' centroids lie at its two ends along it (within
``END_PX``), only the points within ``CORE_PX`` of the core: midway between the two tails'
centroids (:mod:`.tails`: the core lies between its images in the two tails; the dot's centroid
on the map leans to its brighter lobe: median 0.5 px, 90th percentile 1.1 px on the low-exposure
scan, 0.7 / 1.2 px on cell walls, enough to move the cut by a point). A streak lying in the
slab has its lobes beside it, across its centre line, so it is left alone; so are a longer line
whose image slides along it from one tail to the other, and a dot whose tails lie inside it. The
mask keeps the lobes (the line tracing uses the whole piece). Issue 10, precision;
docs/reconstruction.md, step 8.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .tails import TAIL_GROW_PX, tail_centroids

#: A centre line of at most this many points is a dot (a pair of lobes spans 8-12 px on the
#: low-exposure scan; 8 missed most of the pairs; 14-20 catch two more there, precision 0.870 ->
#: 0.878 end to end, but cut short lines elsewhere: recall -0.005 on our dense network, -0.002 on
#: dfxm-geo cell walls and fall-off).
DOT_POINTS = 12
#: The two tails' centroids, projected on the dot's centre line, lie at its two ends: each at
#: most this far (pixels) inside its end. On the low-exposure scan they lie at or beyond the ends;
#: a dfxm-geo line whose image slides along it from one tail to the other had one 3 px inside
#: (1 px: precision 0.83 instead of 0.87 there; 2 px: the same as 1.5 there, but shorter lines
#: of our short-range scan cut, recall 0.997 -> 0.981).
END_PX = 1.5
#: Points farther than this from the dot's core (midway between its tails' centroids) go (pixels of
#: each axis; measured from the centroid on the map, as first written, the true points lay within
#: 3.1-4.3 px of it, the false ones 3.5-6 px; from the tails' midpoint, 2.5 / 3 / 3.5 / 4 gave ours
#: low exposure precision 0.908 / 0.910 / 0.902 / 0.878 with the true classes, the map centroid
#: 0.886 at 3; a radius scaled with the centroids' separation cut the short dots of other scans:
#: recall -0.01 to -0.035 on five of them).
CORE_PX = 3.0


def keep_lobe_dot_centres(skeleton: np.ndarray, mask: np.ndarray, tails: np.ndarray | None) -> np.ndarray:
    """``skeleton`` (the centre lines of ``mask``) with each lobe-pair dot cut to its core's
    points (see the module). ``tails``: (2, rows, cols) low and high tails
    (:func:`.tails.tail_images`), None where not kept (``skeleton`` unchanged)."""
    if tails is None or not skeleton.any():
        return skeleton
    lab, n = ndi.label(skeleton, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    small = np.flatnonzero((sizes >= 3) & (sizes <= DOT_POINTS))
    small = small[small > 0]
    if not len(small):
        return skeleton
    mlab, _ = ndi.label(mask, structure=np.ones((3, 3)))
    mboxes = ndi.find_objects(mlab)
    boxes = ndi.find_objects(lab)
    out = skeleton.copy()
    for k in small:
        pr, pc = np.nonzero(lab[boxes[k - 1]] == k)
        pr, pc = pr + boxes[k - 1][0].start, pc + boxes[k - 1][1].start
        centroids = _own_tail_centroids(k, pr, pc, lab, mlab, mboxes, tails)
        if centroids is None:
            continue
        pts = np.column_stack([pr, pc]).astype(np.float64)
        axis = np.linalg.svd(pts - pts.mean(axis=0), full_matrices=False)[2][0]
        along = pts @ axis
        ends = np.sort(centroids @ axis)
        if ends[0] > along.min() + END_PX or ends[1] < along.max() - END_PX:
            continue  # the tails do not sit at the two ends: not a lobe pair
        far = np.hypot(*(pts - centroids.mean(axis=0)).T) > CORE_PX
        out[pr[far], pc[far]] = False
    return out


def _own_tail_centroids(k: int, pr: np.ndarray, pc: np.ndarray, lab: np.ndarray, mlab: np.ndarray,
                        mboxes: list, tails: np.ndarray) -> np.ndarray | None:
    """The two tails' centroids (2, 2) over the mask's object under centre line ``k`` (points
    ``pr``, ``pc``; ``lab``: the centre lines' labels, ``mlab``: the mask's, ``mboxes`` its
    objects' boxes), grown by ``TAIL_GROW_PX``; None where the object holds other centre lines
    too (its tails are not this dot's) or a tail holds nothing there."""
    objects = np.unique(mlab[pr, pc])
    objects = objects[objects > 0]
    if not len(objects):
        return None
    g, (rows, cols) = TAIL_GROW_PX, mlab.shape
    r0 = max(min(mboxes[o - 1][0].start for o in objects) - g, 0)
    r1 = min(max(mboxes[o - 1][0].stop for o in objects) + g, rows)
    c0 = max(min(mboxes[o - 1][1].start for o in objects) - g, 0)
    c1 = min(max(mboxes[o - 1][1].stop for o in objects) + g, cols)
    own = np.isin(mlab[r0:r1, c0:c1], objects)
    if np.any(own & (lab[r0:r1, c0:c1] > 0) & (lab[r0:r1, c0:c1] != k)):
        return None
    nr, nc = np.nonzero(ndi.binary_dilation(own, iterations=g))
    return tail_centroids(nr + r0, nc + c0, tails)
