"""napari-weakbeam: weak-beam / strong-beam classification and 3D dislocation reconstruction for DFXM."""

__version__ = "0.1.0"
