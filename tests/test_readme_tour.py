"""The README's command-line tour runs word for word in an empty folder: every command makes what
the next one needs (parsed from README.md, so the README and this test cannot drift apart)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from napari_weakbeam.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_commands() -> list[list[str]]:
    """The ``weakbeam ...`` lines of the bash block after "On the command line" in README.md."""
    text = README.read_text()
    start = text.index("**On the command line**")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None, "no bash block after 'On the command line' in README.md"
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [argv for argv in lines if argv]


def test_tour_is_parsed():
    cmds = tour_commands()
    assert all(argv[0] == "weakbeam" for argv in cmds)
    names = [argv[1] for argv in cmds]
    assert names[:3] == ["simulate", "classify", "train"] and "reconstruct" in names and "compare" in names


def test_readme_tour_runs_word_for_word(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for argv in tour_commands():
        rc = main(argv[1:])
        cap = capsys.readouterr()
        assert rc == 0, f"{shlex.join(argv)} failed: {cap.err.strip().splitlines()[-1:] or cap.out}"
    made = sorted(p.name for p in tmp_path.iterdir())
    assert {"scan.h5", "pred.h5", "my.pt", "volume.h5"} <= set(made)
    assert not [n for n in made if n.startswith(".")], made  # no partial or temporary file left
    assert "within" in cap.out  # compare printed its statistics
    # the Python block after the tour, on the scan the tour made
    start = README.read_text().index("**From Python**")
    code = re.search(r"```python\n(.*?)```", README.read_text()[start:], re.S).group(1)
    (tmp_path / "pred.h5").unlink()  # the block writes it anew
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["rec"].points_um.size and (tmp_path / "pred.h5").exists()
    assert "layers 3 3" in capsys.readouterr().out
