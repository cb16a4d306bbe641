"""Reader benchmark: opening is metadata-only, and reading frames costs about what h5py costs.

1. Open time of a large Bliss master (default 20 layers x 150 frames x 2048x2048 uint16 = 25 GB of
   frames, stored as unallocated chunked datasets so the file is tiny) with ``open_scan``, against
   a baseline measured in the same run: reading one 2048x2048 frame with h5py.
2. Frame reads through ``Scan.frame`` (dask + H5FrameSource, bitshuffle-LZ4, external files) against
   reading the same frames straight from the h5py dataset.
3. Opening an EDF series with ``open_scan`` (headers only) against ``fabio.open`` of every file.

    .venv/bin/python benchmarks/bench_readers.py [--layers 20 --frames 150 --size 2048]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.scanfiles.readers.edf import write_edf_series


def _best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def big_master(path: Path, layers: int, frames: int, size: int) -> None:
    """A Bliss master with tiny frames, whose detector datasets are then swapped for unallocated
    (layers' worth of) 2048x2048 chunked datasets: the layout and metadata of a big scan."""
    angles = [np.linspace(-0.06, 0.06, frames)] * layers
    write_bliss(path, (np.zeros((frames, 1, 1), np.uint16) for _ in range(layers)), angles,
                np.arange(layers) * 2.0, pixel_size=0.044, compression="bitshuffle")
    with h5py.File(path, "a") as f:
        for i in range(layers):
            g = f[f"{i + 1}.1/instrument/pco_ff"]
            del g["data"]
            g.create_dataset("data", shape=(frames, size, size), dtype=np.uint16,
                             chunks=(1, size, size), **hdf5plugin.Bitshuffle(cname="lz4"))
            g["data"][0] = 100  # one written frame, for the baseline read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--read-size", type=int, default=1024)
    ap.add_argument("--edf-files", type=int, default=300)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. open time of a big scan
        master = tmp / "big.h5"
        big_master(master, args.layers, args.frames, args.size)
        gb = args.layers * args.frames * args.size**2 * 2 / 1e9
        t_open = _best(lambda: open_scan(master))
        with h5py.File(master) as f:
            t_frame = _best(lambda: f["1.1/instrument/pco_ff/data"][0])
        print(f"open_scan of {args.layers} layers x {args.frames} frames x {args.size}^2 ({gb:.1f} GB of frames): "
              f"{t_open * 1e3:.0f} ms; baseline one-frame h5py read {t_frame * 1e3:.1f} ms; "
              f"ratio {t_open / t_frame:.1f} frame reads")

        # 2. frame reads: Scan.frame vs h5py, real compressed data in external files
        rng = np.random.default_rng(0)
        n = 31
        layers = [rng.poisson(200, (n, args.read_size, args.read_size)).astype(np.uint16) for _ in range(2)]
        write_bliss(tmp / "read.h5", layers, [np.linspace(-0.06, 0.06, n)] * 2, [0, 2],
                    external=True, compression="bitshuffle", zigzag=True)
        scan = open_scan(tmp / "read.h5")

        def via_scan():
            for i in range(n):
                scan.frame(1, i)

        def via_h5py():
            with h5py.File(tmp / "read.h5") as f:
                d = f["2.1/measurement/pco_ff"]
                for i in range(n):
                    d[i]

        t_scan, t_h5 = _best(via_scan), _best(via_h5py)
        mb = n * args.read_size**2 * 2 / 1e6
        print(f"read {n} frames {args.read_size}^2 bitshuffle external: Scan.frame {mb / t_scan:.0f} MB/s, "
              f"h5py {mb / t_h5:.0f} MB/s, ratio {t_scan / t_h5:.2f}")
        t_layer = _best(lambda: scan.layer(0))
        print(f"Scan.layer (whole layer, {mb:.0f} MB): {mb / t_layer:.0f} MB/s, ratio to h5py frame loop {t_layer / t_h5:.2f}")

        # 3. EDF: open (headers) vs reading every file
        k = args.edf_files
        per = k // 10
        data = rng.integers(100, 3000, (10, per, 256, 256)).astype(np.uint16)
        files = write_edf_series(tmp / "edf", data, [np.linspace(-23.176, -23.146, per)] * 10, np.arange(10) * 2.0)
        import fabio

        t_edf = _best(lambda: open_scan(tmp / "edf"), 2)
        t_all = _best(lambda: [fabio.open(f).data for f in files], 2)
        print(f"EDF series of {len(files)} files 256^2: open_scan {t_edf * 1e3:.0f} ms, "
              f"baseline fabio.open of every file {t_all * 1e3:.0f} ms, ratio {t_edf / t_all:.2f}")


if __name__ == "__main__":
    main()
