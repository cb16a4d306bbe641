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


def _imports(path: Path, package: str) -> set[str]:
    """Modules of the package that ``path`` imports at run time, module level or inside functions."""
    import ast

    mod = ".".join(path.relative_to(CORE.parent.parent).with_suffix("").parts).removesuffix(".__init__")
    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    def nodes(tree):  # every node but those under "if TYPE_CHECKING:" (type hints only)
        for node in ast.iter_child_nodes(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                continue
            yield node
            yield from nodes(node)

    out = set()
    for node in nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            parts = (base[: len(base) - node.level + 1] if node.level else []) + (node.module.split(".") if node.module else [])
            target = ".".join(parts)
            names = [target] + [target + "." + a.name for a in node.names]  # "from .m import f" or "from . import m"
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out.update(n for n in names if n.startswith(package))
    return out


def test_core_has_no_import_cycles():
    """No two core modules import each other, directly or round a loop (not even inside a function:
    a deferred import that closes a loop hides a dependency the wrong way round)."""
    files = {".".join(p.relative_to(CORE.parent.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in CORE.rglob("*.py")}
    graph = {m: {t for t in _imports(p, "napari_weakbeam.core") if t in files and t != m} for m, p in files.items()}
    for m, deps in graph.items():  # a package's __init__ only re-exports: it is not a dependency
        graph[m] = {d for d in deps if files[d].name != "__init__.py"}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for d in graph[m]:
            if seen.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in seen:
                visit(d)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)


def test_no_widget_imports_another_widgets_private_names():
    """Widgets share helpers through the small _napari modules, not through each other's privates."""
    import ast

    napari_dir = CORE.parent / "_napari"
    bad = []
    for path in sorted(napari_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_widget"):
                bad += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not bad, f"private names imported from a widget: {bad}"


#: Core functions and classes that do whole-scan work (or build it): only the workflows call them.
WHOLE_SCAN = {
    "iter_classify_layer", "classify_layer", "iter_layer_results", "classify_task", "reconstruct_task",
    "process_layer", "reconstruct_one", "assemble", "Trainer", "adapt_trainer", "training_inputs",
    "labelled_frames", "PredictionWriter", "ReconstructionWriter", "simulate_to_file",
}


def _imported_names(path: Path) -> set[tuple[str, str]]:
    """(module, name) of every ``from M import name`` in ``path``, module level or in functions."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.update((node.module or "", a.name) for a in node.names)
    return out


def test_only_workflows_do_whole_scan_work():
    """The CLI, the widgets and their worker bodies reach whole-scan work through the workflows."""
    root = CORE.parent
    users = sorted((root / "commands").glob("*.py")) + sorted((root / "_napari").glob("*.py"))
    bad = [f"{p.relative_to(root)}: {m}.{n}" for p in users for m, n in _imported_names(p)
           if n in WHOLE_SCAN and "core" in m]
    assert not bad, f"whole-scan work outside the workflows: {bad}"
    # and the widgets import no workflow module's internals, only the package's functions
    private = [f"{p.name}: {m}.{n}" for p in users for m, n in _imported_names(p)
               if "workflows" in m and n.startswith("_")]
    assert not private, private


def repeated_blocks(paths: list[Path], size: int = 11) -> list[tuple[str, str]]:
    """Blocks of ``size`` code lines (blank and comment lines skipped, indentation ignored) that
    appear twice in ``paths``: ``[(first place, repeat), ...]`` as ``file:line``."""
    import hashlib

    first: dict[str, tuple[Path, int]] = {}
    found = []
    for p in paths:
        code = [(i + 1, line.strip()) for i, line in enumerate(p.read_text().splitlines())]
        code = [(n, t) for n, t in code if t and not t.startswith("#")]
        for k in range(len(code) - size + 1):
            key = hashlib.sha1("\n".join(t for _, t in code[k:k + size]).encode()).hexdigest()
            here = (p, code[k][0])
            if key not in first:
                first[key] = here
            elif first[key][0] != p or here[1] - first[key][1] >= size:  # not an overlap with itself
                found.append((f"{first[key][0].name}:{first[key][1]}", f"{p.name}:{here[1]}"))
    return found


def test_no_block_of_more_than_ten_lines_is_repeated_in_src(tmp_path):
    copy = "\n".join(f"x{i} = {i} * 2" for i in range(11))
    (tmp_path / "a.py").write_text(f"def f():\n{copy}\n")
    (tmp_path / "b.py").write_text(f"y = 1\n# a comment between\n{copy}\n")
    assert len(repeated_blocks([tmp_path / "a.py", tmp_path / "b.py"])) == 1  # the check can fail
    src = sorted(CORE.parent.rglob("*.py"))
    assert not repeated_blocks(src)


def test_widgets_stay_thin():
    """Each widget only lays out controls and wires them to its jobs (_jobs.py) and the session."""
    widgets = sorted((CORE.parent / "_napari").glob("*_widget.py"))
    sizes = {p.name: len(p.read_text().splitlines()) for p in widgets}
    assert len(sizes) >= 5 and all(n <= 250 for n in sizes.values()), sizes
