"""The precision rules of ``adaptive`` (issue 10, goal C): dim line ends outside the slab are
trimmed, a dim stretch between bright ones is kept, and faint objects beside a bright line go."""

from __future__ import annotations

import numpy as np

from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams, skeleton_2d
from napari_weakbeam.core.reconstruction.segmentation import (
    dim_skeleton_ends,
    drop_outshone_objects,
    noise_level,
    segment_map,
)


def _map(rng, rows=160, cols=96):
    """Unit Gaussian noise, clipped at 0 (a top-hat map's background)."""
    return np.maximum(rng.normal(0, 1, (rows, cols)), 0).astype(np.float32)


def _segment(img, **kw):
    params = ReconstructionParams(**kw)
    return segment_map(img, params, noise_level(img))


def test_dim_ends_of_an_inclined_line_are_trimmed():
    """The image of a line crossing the slab at an angle: a streak whose brightness follows the
    beam's height profile (a Gaussian along it). Its skeleton keeps the part above 0.3 of its
    peak (``end_fraction``) and loses the dim ends, which the rule off keeps."""
    rng = np.random.default_rng(0)
    img = _map(rng)
    rows = np.arange(20, 141)
    img[rows, 40] += 400 * np.exp(-0.5 * ((rows - 80) / 20.0) ** 2)  # 400 noise units at its centre
    off = skeleton_2d(_segment(img, end_fraction=0.0))
    on = skeleton_2d(_segment(img))
    r_off, r_on = np.nonzero(off)[0], np.nonzero(on)[0]
    # at 0.3 of the peak the Gaussian is 1.55 sigma = 31 rows from the centre
    assert r_off.min() < 45 and r_off.max() > 115
    assert 45 <= r_on.min() <= 53 and 107 <= r_on.max() <= 115
    assert on[60:100, 40].all()


def test_dim_stretch_between_bright_parts_is_kept():
    """A line whose brightness varies (dfxm-geo's in-plane streaks): the dim middle is not an end,
    so the peel stops at the bright parts and keeps it; only points peeled from an end go."""
    skel = np.zeros((40, 5), dtype=bool)
    skel[5:35, 2] = True
    value = np.full(skel.shape, 100.0)
    value[15:25, 2] = 10.0  # dim middle, 0.1 of the peak
    value[5:8, 2] = 10.0  # dim end
    gone = dim_skeleton_ends(skel, value, 0.3)
    assert gone[5:8, 2].all() and gone.sum() == 3


def test_faint_object_beside_a_bright_line_is_dropped():
    """A blob at 0.15 of a bright line's peak (a strain lobe) within the neighbourhood of the line
    goes (``neighbour_fraction`` 0.25); the same blob far from any brighter object stays, and a
    line half as bright as its neighbour stays."""
    mask = np.zeros((300, 40), dtype=bool)
    img = np.zeros(mask.shape, dtype=np.float32)
    mask[10:60, 10], img[10:60, 10] = True, 1000.0  # bright line
    mask[30:40, 20:25], img[30:40, 20:25] = True, 150.0  # lobe beside it
    mask[10:60, 30], img[10:60, 30] = True, 500.0  # a fainter line beside it
    mask[250:260, 20:25], img[250:260, 20:25] = True, 150.0  # the same blob, alone
    kept = drop_outshone_objects(mask, img, 0.25, (121, 121))
    assert not kept[30:40, 20:25].any()
    assert kept[10:60, 10].all() and kept[10:60, 30].all() and kept[250:260, 20:25].all()
    assert drop_outshone_objects(mask, img, 0.0, (121, 121)).sum() == mask.sum()


def test_lobe_beside_a_line_dropped_by_default_segmentation():
    """End to end through ``segment_map``: a faint lobe 12 px beside a bright line, both far above
    the noise, is dropped by the default ``adaptive`` and kept with ``neighbour_fraction=0``."""
    rng = np.random.default_rng(3)
    img = _map(rng)
    img[20:140, 30] += 1500  # bright line
    img[70:78, 42:48] += 200  # lobe: 0.13 of the line, 200 noise units
    assert not _segment(img)[70:78, 42:48].any()
    assert _segment(img, neighbour_fraction=0.0)[70:78, 42:48].sum() > 20


# ``adaptive``'s smallest object in micrometres (DFXM's column pixels ~3.2 row pixels wide)
ASPECT = 3.2


def test_dot_of_a_steep_line_is_kept():
    """The image of a line crossing the slab steeply: a dot one row by two columns (6.4 square
    row pixels at the sample). ``adaptive``'s smallest object is 5 square row pixels (2 pixels
    here); a dot 0.1 as bright as a line beside it is not "outshone" (dots are fainter than
    lines lying in the slab), while a faint streak of the same brightness there goes."""
    from napari_weakbeam.core.reconstruction.segmentation import clean_mask, finish_adaptive

    params = ReconstructionParams(pixel_aspect=ASPECT)
    mask = np.zeros((120, 30), dtype=bool)
    img = np.zeros(mask.shape, dtype=np.float32)
    mask[20:100, 5] = True
    img[20:100, 5] = 100.0  # a bright line
    mask[40, 12:14] = True
    img[40, 12:14] = 10.0  # the dot
    mask[60:80, 20] = True
    img[60:80, 20] = 10.0  # a faint streak, 20 pixels
    cleaned = clean_mask(mask, params)
    assert cleaned[40, 12:14].all()
    assert not clean_mask(mask, ReconstructionParams(method="ridge", pixel_aspect=ASPECT))[40, 12:14].any()
    out = finish_adaptive(cleaned, img, params)
    assert out[40, 12:14].all() and not out[60:80, 20].any() and out[30:90, 5].all()


def test_wall_lines_one_column_apart_keep_their_own_centre_lines():
    """Two dislocations of a wall one column apart: the clean-up's closing joins them into one
    blob for the tracing (the mask), but the points (the skeleton) are the centre lines of the
    pixels the thresholds reached, one on each line, not one between them (dfxm-geo cell walls:
    recall 0.88 -> 0.94). The whole-scan finish stores that skeleton beside the closed mask."""
    from napari_weakbeam.core.reconstruction.reconstruct import finish_segmentation
    from napari_weakbeam.core.reconstruction.segmentation import segment_layer

    rng = np.random.default_rng(5)
    img = _map(rng)
    img[20:140, 40] += 300
    img[20:140, 42] += 300  # the gap (column 41) stays at the noise
    params = ReconstructionParams(pixel_aspect=ASPECT)
    noise = noise_level(img)
    mask, skel = segment_layer(img, params, noise)
    np.testing.assert_array_equal(mask, segment_map(img, params, noise))
    assert mask[30:130, 40:43].all()  # joined for the tracing
    assert skel[30:130, 40].all() and skel[30:130, 42].all() and not skel[30:130, 41].any()
    assert skeleton_2d(mask)[30:130, 41].all()  # the mask's own centre line runs between them
    volume, masks, skels = img[None], np.zeros((1,) + img.shape, bool), np.zeros((1,) + img.shape, bool)
    finish_segmentation(volume, masks, skels, params, np.array([noise]))
    np.testing.assert_array_equal(skels[0], skel)
    np.testing.assert_array_equal(masks[0], mask)


def test_a_blob_with_holes_keeps_its_own_centre_line():
    """Only an object the thresholds saw as two or more lines gives up the closing's pixels: a
    blob that they saw as one part with holes and notches (a noisy, low-exposure image) keeps the
    mask's centre line, which the holes would give spurs."""
    from napari_weakbeam.core.reconstruction.segmentation import reached_pixels

    params = ReconstructionParams(pixel_aspect=ASPECT)
    blob = np.zeros((40, 20), dtype=bool)
    blob[10:30, 6:12] = True
    raw = blob.copy()
    raw[[14, 18, 22, 26], [8, 9, 8, 9]] = False  # holes
    raw[[12, 20], [6, 11]] = False  # notches
    np.testing.assert_array_equal(reached_pixels(blob, raw, params), blob)
    two = blob.copy()
    two[10:30, 8:10] = False  # the same blob seen as two lines
    np.testing.assert_array_equal(reached_pixels(blob, two, params), two)
