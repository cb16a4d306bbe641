"""The core of napari-weakbeam: no Qt, no napari. Usable from scripts, the CLI and Dask workers."""
