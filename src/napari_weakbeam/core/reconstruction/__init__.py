"""3D reconstruction of dislocations from the weak-beam data of a layer scan.

* :mod:`.detector_defects` - the camera's hot pixels and zingers, repaired before the map;
* :mod:`.wb_weights` - per-pixel WB weights from per-patch labels;
* :mod:`.dislocation_map` - a layer's dislocation map and mask; :mod:`.segmentation` - its thresholds;
* :mod:`.reconstruct` - parameters, per-layer processing, the point cloud; :mod:`.lines` - 3D
  lines and their tracing; :mod:`.drift` - the drift between layers; :mod:`.line_scoring` - traced
  lines against true ones;
* :mod:`.reconstruction_io` - reconstruction files; :mod:`.exports` - VTK, XDMF, TIFF, CSV;
* :mod:`.compare` - scoring one point cloud against another (or the truth).
"""
