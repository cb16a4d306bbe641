"""The core must stay free of Qt and napari, so it runs in scripts, the CLI and Dask workers."""

import subprocess
import sys
from pathlib import Path

import napari_weakbeam

CORE = Path(napari_weakbeam.__file__).parent / "core"
FORBIDDEN = ("napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "PySide2", "magicgui", "superqt", "vispy")


def test_core_imports_no_gui_modules():
    modules = sorted(
        "napari_weakbeam." + ".".join(p.relative_to(CORE.parent).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py" or p.parent != CORE
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m.removesuffix('.__init__'))\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in GUI modules: {out.stdout.strip()}"


def test_cli_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "napari_weakbeam.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("simulate", "classify", "train", "reconstruct", "compare"):
        assert name in out.stdout
