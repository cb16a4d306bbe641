"""Scan files: the one data model of a rocking scan and everything that reads or writes one.

* :mod:`.scan` - :class:`Scan`, the data model every reader produces; ``layer_spacing``;
* :mod:`.readers` - ``open_scan(path, ...)`` for Bliss HDF5, plain HDF5, EDF and TIFF;
* :mod:`.bliss_writer` / :mod:`.bliss_live_writer` - write the ESRF Bliss layout at once or frame
  by frame (as the beamline does);
* :mod:`.live_feed` - frames of a scan while Bliss writes it (blissdata, file or Redis);
* :mod:`.layer_file` - the base of the result files written layer by layer;
* :mod:`.nexus` - NeXus groups around the project's HDF5 results.
"""
