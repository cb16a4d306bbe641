"""Classification of patches as weak beam (WB) or strong beam (SB).

* :mod:`.models` - the networks (``paper``, ``wbnet``); :mod:`.classifier` - a network plus its
  normalisation (:mod:`.normalise`) and device (:mod:`.device`); :mod:`.modelfile` - model files;
* :mod:`.annotations` - painted labels and their files; :mod:`.training` - training and
  fine-tuning, :mod:`.train_process` in a separate process, :mod:`.adapt` with no painting;
* :mod:`.scan_context` - what a patch's rocking curve says about each frame;
  :mod:`.rocking_aid` - labels from the rocking curve alone; :mod:`.self_check` - label-free checks;
* :mod:`.predictions` - whole-layer inference and the predictions file;
  :mod:`.weak_range` - where weak beam is per layer; :mod:`.live` - following a scan as it is written.
"""
