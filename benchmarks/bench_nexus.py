"""What the NeXus layout costs a reconstruction file: time and bytes of ``write_nexus``.

The NXdata groups link the volume, mask and skeleton (no copy) but a 3D scatter needs its x, y, z as
separate 1D datasets: the point cloud and the line vertices are stored a second time (float32,
gzip). This writes a reconstruction of ``--layers`` x ``--size``^2 with the skeleton of random
lines as its points (about ``--points`` of them) through ``save_reconstruction`` and reports the
time of the whole save, the time of ``write_nexus`` alone (run again on the saved file) and the
bytes of the NeXus datasets against the file.

    .venv/bin/python benchmarks/bench_nexus.py [--layers 50 --size 1024 --points 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from napari_weakbeam.core.reconstruction.reconstruct import Reconstruction, layer_points_um
from napari_weakbeam.core.reconstruction.reconstruction_io import save_reconstruction, write_nexus


def synthetic(layers: int, size: int, n_points: int, seed: int = 0) -> Reconstruction:
    """A reconstruction whose skeleton is random straight segments, about ``n_points`` voxels."""
    rng = np.random.default_rng(seed)
    skel = np.zeros((layers, size, size), bool)
    per_layer = max(1, n_points // layers)
    for i in range(layers):
        n = 0
        while n < per_layer:
            r0, c0 = rng.integers(0, size, 2)
            length = int(rng.integers(20, 200))
            angle = rng.uniform(0, np.pi)
            t = np.arange(length)
            r = np.clip(r0 + t * np.sin(angle), 0, size - 1).astype(int)
            c = np.clip(c0 + t * np.cos(angle), 0, size - 1).astype(int)
            skel[i, r, c] = True
            n = int(skel[i].sum())
    voxel = (1.0, 0.05, 0.14)
    pos = np.arange(layers, dtype=float)
    points = np.concatenate([layer_points_um(skel[i], pos[i], voxel) for i in range(layers)])
    volume = skel.astype(np.float32) * rng.uniform(0.5, 1.0, skel.shape).astype(np.float32)
    return Reconstruction(volume=volume, mask=skel, skeleton=skel, points_um=points, voxel_size_um=voxel,
                          layer_positions=pos, method="adaptive", params={}, source="synthetic")


def nexus_bytes(path: Path) -> int:
    """Storage of the datasets that only the NeXus groups hold (links cost nothing)."""
    total = 0
    with h5py.File(path, "r") as f:
        for name in ("point_cloud", "line_vertices", "map"):
            g = f["reconstruction"].get(name)
            if g is None:
                continue
            for key in g:
                if isinstance(g.get(key, getlink=True), h5py.HardLink):
                    total += g[key].id.get_storage_size()
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=50)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--points", type=int, default=1_000_000)
    args = ap.parse_args()
    rec = synthetic(args.layers, args.size, args.points)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vol.h5"
        t0 = time.perf_counter()
        save_reconstruction(path, rec)
        t_save = time.perf_counter() - t0
        with h5py.File(path, "a") as f:
            t0 = time.perf_counter()
            write_nexus(f["reconstruction"])
            t_nexus = time.perf_counter() - t0
        size, extra = path.stat().st_size, nexus_bytes(path)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.layers} layers x {args.size}^2, {len(rec.points_um)} points")
    print(f"save_reconstruction {t_save:.2f} s, of which write_nexus {t_nexus:.2f} s ({t_nexus / t_save:.0%})")
    print(f"file {size / 2**20:.1f} MB, NeXus datasets {extra / 2**20:.1f} MB ({extra / size:.0%}), "
          f"{extra / max(len(rec.points_um), 1):.1f} bytes per point")


if __name__ == "__main__":
    main()
