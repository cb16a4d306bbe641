"""The core of napari-weakbeam: no Qt, no napari. Usable from scripts, the CLI and Dask workers.

Grouped by domain; each subpackage's ``__init__`` says what it offers:

* :mod:`.scanfiles` - the Scan model, the readers of every format, the Bliss writers, NeXus;
* :mod:`.classification` - the patch classifier: networks, model files, training, inference,
  the scan context, the labelling aid, where weak beam is, live following;
* :mod:`.reconstruction` - dislocation maps, segmentation, 3D points and lines, their files;
* :mod:`.distribution` - per-layer work over Dask and SLURM;
* :mod:`.simulate` - the physics-based simulator and the dfxm-geo generator, with ground truth.

Rules shared by all of them live here: :mod:`.errors` (one-line user errors, the finite check),
:mod:`.atomic` (never replace a file by accident), :mod:`.patches` (the patch grid, the class
codes and names, the u -> class rule), :mod:`.limits` (sizes and memory checked before work).
Whole user actions (classify a scan, train, reconstruct, ...) are in :mod:`napari_weakbeam.workflows`.
"""
