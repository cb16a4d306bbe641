"""The wide sweep of bad inputs (docs/benchmarks.md "Bad-input suite"): the cases of
tests/test_safety.py plus more, run in one process in one folder of real files; counts
tracebacks, errors that are not one line, exit statuses 0 and files changed or left behind.

    PYTHONPATH=src python benchmarks/bench_bad_inputs.py
"""
import contextlib, io, os, shutil, sys, tempfile, traceback, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
warnings.simplefilter("ignore")
import test_safety as ts
from napari_weakbeam.cli import main

d = Path(tempfile.mkdtemp(prefix="weakbeam-bad-inputs-")) / "work"
class F:
    def mktemp(self, name):
        d.mkdir(parents=True); return d
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    ts.work.__wrapped__(F())
(d / "notes.csv").write_text("z,y,x\n")
(d / "angles_bad.txt").write_text("a b c\n")
(d / "angles_nan.txt").write_text("1 nan 3\n")
S, O = "{d}/scan.h5", "{d}/new.h5"
EXTRA = {
    "classify --angles bad file": ("classify", "{d}/stack.tif", "--out", O, "--angles", "{d}/angles_bad.txt"),
    "classify --angles nan": ("classify", "{d}/stack.tif", "--out", O, "--angles", "{d}/angles_nan.txt"),
    "classify --angles wrong count": ("classify", "{d}/stack.tif", "--out", O, "--angles=0:0.1:3"),
    "classify --angles missing": ("classify", "{d}/stack.tif", "--out", O, "--angles", "{d}/none.txt"),
    "classify --scans 9.1": ("classify", S, "--out", O, "--scans", "9.1"),
    "classify --scans empty": ("classify", S, "--out", O, "--scans", ",,"),
    "classify --detector nope": ("classify", S, "--out", O, "--detector", "nope"),
    "classify --pixel-size -1": ("classify", S, "--out", O, "--pixel-size", "-1"),
    "classify --pixel-size nan": ("classify", S, "--out", O, "--pixel-size", "nan"),
    "classify --magnification 0": ("classify", S, "--out", O, "--magnification", "0"),
    "classify --magnification nan": ("classify", S, "--out", O, "--magnification", "nan"),
    "classify --device cuda": ("classify", S, "--out", O, "--device", "cuda"),
    "classify --device tpu": ("classify", S, "--out", O, "--device", "tpu"),
    "classify --workers -1": ("classify", S, "--out", O, "--workers", "-1"),
    "classify --scheduler bad": ("classify", S, "--out", O, "--scheduler", "tcp://127.0.0.1:1"),
    "classify --patch-size -8": ("classify", S, "--out", O, "--patch-size", "-8"),
    "classify --patch-size 65": ("classify", S, "--out", O, "--patch-size", "65"),
    "classify model = folder": ("classify", S, "--out", O, "--model", "{d}/emptydir"),
    "classify model = text": ("classify", S, "--out", O, "--model", "{d}/notes.txt"),
    "classify model = annotations": ("classify", S, "--out", O, "--model", "{d}/labels.h5"),
    "classify input = model": ("classify", "{d}/model.pt", "--out", O),
    "classify input = predictions": ("classify", "{d}/pred.h5", "--out", O),
    "classify input glob nothing": ("classify", "{d}/*.edf", "--out", O),
    "classify input h5path missing ds": ("classify", S + "::/nothing", "--out", O),
    "classify input h5path group": ("classify", S + "::/1.1", "--out", O),
    "classify no --out": ("classify", S),
    "train --lr nan": ("train", "--suggest", "--scan", S, "--out", "{d}/m.pt", "--lr", "nan"),
    "train --lr -1": ("train", "--suggest", "--scan", S, "--out", "{d}/m.pt", "--lr", "-1"),
    "train --val-fraction 1": ("train", "--suggest", "--scan", S, "--out", "{d}/m.pt", "--val-fraction", "1"),
    "train --batch-size 0": ("train", "--suggest", "--scan", S, "--out", "{d}/m.pt", "--batch-size", "0"),
    "train --patience 0": ("train", "--suggest", "--scan", S, "--out", "{d}/m.pt", "--patience", "0"),
    "train --max-suggested 0": ("train", "--suggest", "--scan", S, "--out", "{d}/m.pt", "--max-suggested", "0"),
    "train --patch-size 4": ("train", "--suggest", "--scan", S, "--out", "{d}/m.pt", "--patch-size", "4"),
    "train --patch-size 65": ("train", "--suggest", "--scan", S, "--out", "{d}/m.pt", "--patch-size", "65"),
    "train no labels": ("train", "--scan", S, "--out", "{d}/m.pt"),
    "train no scan": ("train", "--suggest", "--out", "{d}/m.pt"),
    "train annotations = predictions": ("train", "{d}/pred.h5", "--scan", S, "--out", "{d}/m.pt"),
    "train annotations = model": ("train", "{d}/model.pt", "--scan", S, "--out", "{d}/m.pt"),
    "train --from folder": ("train", "{d}/labels.h5", "--scan", S, "--out", "{d}/m.pt", "--from", "{d}/emptydir"),
    "train --from text": ("train", "{d}/labels.h5", "--scan", S, "--out", "{d}/m.pt", "--from", "{d}/notes.txt"),
    "train --arch paper from default": ("train", "{d}/labels.h5", "--scan", S, "--out", "{d}/m.pt", "--arch", "paper", "--from", "default"),
    "train out folder": ("train", "--suggest", "--scan", S, "--out", "{d}/emptydir"),
    "train scan = table": ("train", "--suggest", "--scan", "{d}/table.h5", "--out", "{d}/m.pt"),
    "train scan truncated": ("train", "--suggest", "--scan", "{d}/truncated.h5", "--out", "{d}/m.pt"),
    "train scan NaN": ("train", "--suggest", "--scan", "{d}/nan.h5::/entry/data", "--out", "{d}/m.pt", "--patch-size", "32"),
    "reconstruct --threshold nan": ("reconstruct", S, "--method", "paper", "--out", O, "--threshold", "nan"),
    "reconstruct --sigmas a,b": ("reconstruct", S, "--method", "ridge", "--out", O, "--sigmas", "a,b"),
    "reconstruct --sigmas -1": ("reconstruct", S, "--method", "ridge", "--out", O, "--sigmas", "-1"),
    "reconstruct --frames x": ("reconstruct", S, "--method", "manual", "--out", O, "--frames", "x"),
    "reconstruct --frames 100": ("reconstruct", S, "--method", "manual", "--out", O, "--frames", "100"),
    "reconstruct --frames wrong count": ("reconstruct", S, "--method", "manual", "--out", O, "--frames", "1,2,3"),
    "reconstruct --min-size -1": ("reconstruct", S, "--method", "manual", "--out", O, "--min-size", "-1"),
    "reconstruct --floor nan": ("reconstruct", S, "--method", "manual", "--out", O, "--floor", "nan"),
    "reconstruct --dark-level inf": ("reconstruct", S, "--method", "manual", "--out", O, "--dark-level", "inf"),
    "reconstruct --export .png": ("reconstruct", S, "--method", "manual", "--out", O, "--export", "{d}/x.png"),
    "reconstruct --export folder": ("reconstruct", S, "--method", "manual", "--out", O, "--export", "{d}/emptydir"),
    "reconstruct --export missing folder": ("reconstruct", S, "--method", "manual", "--out", O, "--export", "{d}/nodir/x.csv"),
    "reconstruct --export = --out": ("reconstruct", S, "--method", "manual", "--out", "{d}/x.csv", "--export", "{d}/x.csv"),
    "reconstruct predictions of other patch": ("reconstruct", S, "--predictions", "{d}/pred.h5", "--out", O, "--patch-size", "16"),
    "reconstruct predictions = scan": ("reconstruct", S, "--predictions", S, "--out", O),
    "reconstruct predictions = text": ("reconstruct", S, "--predictions", "{d}/notes.txt", "--out", O),
    "reconstruct model corrupt": ("reconstruct", S, "--model", "{d}/corrupt.pt", "--out", O),
    "reconstruct input table": ("reconstruct", "{d}/table.h5", "--out", O, "--method", "manual"),
    "reconstruct input NaN": ("reconstruct", "{d}/nan.h5::/entry/data", "--out", O, "--method", "manual"),
    "reconstruct out in missing folder": ("reconstruct", S, "--method", "manual", "--out", "{d}/nodir/v.h5"),
    "compare --tolerance -1": ("compare", "{d}/volume.h5", S, "--tolerance", "-1"),
    "compare --tolerance nan": ("compare", "{d}/volume.h5", S, "--tolerance", "nan"),
    "compare --histogram .xyz": ("compare", "{d}/volume.h5", S, "--histogram", "{d}/h.xyz"),
    "compare --histogram folder": ("compare", "{d}/volume.h5", S, "--histogram", "{d}/emptydir"),
    "compare model": ("compare", "{d}/model.pt", S),
    "compare annotations": ("compare", "{d}/labels.h5", S),
    "compare truncated": ("compare", "{d}/truncated.h5", S),
    "compare empty": ("compare", "{d}/empty.h5", S),
    "compare folder": ("compare", "{d}/emptydir", S),
    "compare table": ("compare", "{d}/table.h5", S),
    "simulate --layers 0": ("simulate", O, "--layers", "0", "--size", "32", "32"),
    "simulate --size -5 5": ("simulate", O, "--size", "-5", "5"),
    "simulate --size 1 100000000": ("simulate", O, "--size", "8", "100000000"),
    "simulate --frames 100000 big": ("simulate", O, "--frames", "1000000", "--size", "2048", "2048"),
    "simulate --exposure nan": ("simulate", O, "--exposure", "nan", "--size", "32", "32"),
    "simulate --pixel-size 0": ("simulate", O, "--pixel-size", "0", "--size", "32", "32"),
    "simulate --set bad": ("simulate", O, "--set", "nope=1", "--size", "32", "32"),
    "simulate --set bad value": ("simulate", O, "--set", "fwhm_mrad=abc", "--size", "32", "32"),
    "simulate --set nan": ("simulate", O, "--set", "fwhm_mrad=NaN", "--size", "32", "32"),
    "simulate out folder": ("simulate", "{d}/emptydir", "--size", "32", "32"),
    "simulate over text with --overwrite": ("simulate", "{d}/notes.txt", "--overwrite", "--size", "32", "32"),
    "simulate over annotations --overwrite": ("simulate", "{d}/labels.h5", "--overwrite", "--size", "32", "32"),
    "simulate --density -1": ("simulate", O, "--density", "-1", "--size", "32", "32"),
    "simulate --walls -1": ("simulate", O, "--walls", "-1", "--size", "32", "32"),
    "demo --sample nope": ("demo", "--sample", "nope"),
    "unknown command": ("frobnicate",),
}
cases = {**ts.CASES, **EXTRA}
tb = multi = changed = ok0 = 0
bad = []
for name, args in cases.items():
    if name == "train memory of many frames":  # a bad input under the suite's memory limit
        os.environ["WEAKBEAM_MEMORY_LIMIT"] = "600000"
    else:
        os.environ.pop("WEAKBEAM_MEMORY_LIMIT", None)
    argv = [a.format(d=d) for a in args]
    before = ts._snapshot(d)
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(argv)
    except BaseException as exc:
        rc = "EXC"
        err.write("Traceback\n" + "".join(traceback.format_exception_only(type(exc), exc)))
    lines = [l for l in err.getvalue().splitlines() if l.strip()]
    after = ts._snapshot(d)
    problem = []
    if rc == "EXC" or "Traceback" in err.getvalue():
        tb += 1; problem.append("TRACEBACK")
    if rc == 0:
        ok0 += 1; problem.append("exit 0")
    elif len(lines) != 1 or not lines[0].startswith("error:"):
        multi += 1; problem.append(f"{len(lines)} lines")
    if after != before:
        changed += 1; problem.append("FILES CHANGED " + str(set(after) ^ set(before)))
        for k in set(after) - set(before):
            p = d / k
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    if problem:
        bad.append(name)
        print(f"{name}: rc={rc} {problem} | {lines[-1][:200] if lines else out.getvalue()[:200]!r}")
shutil.rmtree(d.parent)
print(f"\n{len(cases)} cases over {len({c[0] for c in cases.values()})} commands: {tb} tracebacks, {multi} not one line, {ok0} exit 0, {changed} changed files")
