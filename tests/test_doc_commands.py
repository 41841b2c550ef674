"""Every command the README and the docs show is one the command-line tools still take: each `python -m fer_core.X`,
`python scripts/X.py` and `python benchmarks/X.py` line is expanded by bash as a reader's shell would (globs, `$(ls
-d ... | paste -sd,)`, `for` loops), then parsed by the tool's own argument parser, and the shipped run folders it
names exist. Nothing is trained or written: parsing stops before the tool starts."""
import argparse
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from fer_core import models

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/results.md", "docs/python.md", "docs/run_folder.md", "models/default/README.md"]
TOOL = re.compile(r"\bpython3? (-m fer_core\.\w+|(\.\./\.\./)?(scripts|benchmarks)/\w+\.py)\b")
# bash runs each line with `python` standing for a function that prints where it ran and its arguments, no more
SHELL = "python() { printf '%s\\0' \"$PWD\" \"$@\"; printf '\\n'; }\ncd \"$1\"\n"


def logical_lines(text: str):
    """The lines of the code blocks (indented or fenced), comments dropped, with `\\` continuations and `for ...; do`
    loops joined into one line each; None where a block ends."""
    code, fenced = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
            code.append(None)
        elif fenced or line.startswith("    "):
            code.append(re.sub(r"(^|\s)#.*$", "", line).strip())
        else:
            code.append(None)
    out, buf = [], ""
    for line in code:
        if line is None:
            out += [buf, None] if buf else [None]
            buf = ""
            continue
        buf = f"{buf} {line}".strip() if buf else line
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
        elif not (re.match(r"for \w+ in .*; do\b", buf) and not re.search(r"\bdone\b", buf)):
            if buf:
                out.append(buf)
            buf = ""
    return out


def commands():
    """(document, line, plugin) for each line of a document's code that runs one of FER Lab's tools; usage lines'
    optional parts ([--base RUN]) are left out, placeholders for a fold, a seed or a count (foldK, K/5, seedN, N,
    EPOCHS) are 1, and ``plugin`` says where the block set FER_LAB_PLUGINS first."""
    found = []
    for doc in DOCS:
        plugin = False
        for line in logical_lines((ROOT / doc).read_text()):
            plugin = plugin and line is not None or bool(line and re.match(r"export .*FER_LAB_PLUGINS=", line))
            parts = re.split(r"\s*&&\s*", line.strip("() ")) if line else []  # only cd and the tools: bash runs it
            tools = parts and TOOL.match(parts[-1]) and all(TOOL.match(p) or re.match(r"cd \S+$", p) for p in parts)
            if tools or line and re.match(r"for \w+ in [\w .-]+; do python [^;&|]*; done$", line):
                while re.search(r"\[[^\[\]]*\]", line):
                    line = re.sub(r"\s*\[[^\[\]]*\]", "", line)
                line = re.sub(r"\bfoldK\b", "fold1", line).replace(" K/5", " 1/5")
                line = re.sub(r"(?<=\s)(N|EPOCHS)(?=\s|$)", "1", re.sub(r"\b(seed|limit)N\b", r"\g<1>1", line))
                found.append((doc, line, plugin))
    return found


COMMANDS = commands()


class Parsed(Exception):
    """Raised by the patched parser with the namespace it made: the tool stops there."""


def expanded(line: str):
    """(folder, argv) for each tool the line starts, as bash expands it, and what bash said on stderr."""
    done = subprocess.run(["bash", "-c", SHELL + line, "doc", str(ROOT)], capture_output=True, text=True, timeout=60)
    calls = [c.split("\0") for c in done.stdout.split("\0\n") if c]
    return [(Path(c[0]), c[1:]) for c in calls], done.stderr


def made_runs():
    """The run folders the documents' commands make (--name, --out artifacts/runs/X), shipped or not."""
    names = set()
    for _, line, _ in COMMANDS:
        names |= set(re.findall(r"--name (\S+)", line)) | set(re.findall(r"--out (?:artifacts/runs/)?([\w.-]+)", line))
    return names


def test_the_documents_show_commands_for_every_tool():
    assert len(COMMANDS) >= 200
    shown = {TOOL.search(line).group(1).split("/")[-1] for _, line, _ in COMMANDS}
    assert {"-m fer_core.train", "-m fer_core.predict", "-m fer_core.evaluate", "-m fer_core.export",
            "-m fer_core.calibrate", "compare_runs.py", "ensemble.py", "results_table.py"} <= shown


@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package:RuntimeWarning")  # runpy's
@pytest.mark.parametrize("doc,line,plugin", COMMANDS, ids=[f"{d}:{c[:70]}" for d, c, _ in COMMANDS])
def test_a_documented_command_is_taken_as_written(doc, line, plugin, monkeypatch, capsys, request):
    calls, said = expanded(line)
    assert calls, f"bash ran no tool from: {line}"
    assert not said.strip(), f"bash, expanding {line!r}: {said}"  # e.g. ls: a glob that names no shipped folder
    parse_args = argparse.ArgumentParser.parse_args

    def parse(self, args=None, namespace=None):
        raise Parsed(parse_args(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    for folder, argv in calls:
        if plugin and "--backbone" in argv:  # the backbone the block's FER_LAB_PLUGINS module registers, stood in for
            backbone = argv[argv.index("--backbone") + 1]
            monkeypatch.setitem(models.REGISTERED, backbone, (None, [], [], None, "plugin"))
            if backbone not in models.BACKBONES:  # the list the parsers' choices are
                models.BACKBONES.append(backbone)
                request.addfinalizer(lambda: models.BACKBONES.remove(backbone))
        monkeypatch.chdir(folder)
        monkeypatch.setattr(sys, "argv", argv[1:] if argv[0] == "-m" else argv)
        with pytest.raises(Parsed):
            try:
                if argv[0] == "-m":
                    runpy.run_module(argv[1], run_name="__main__", alter_sys=False)
                else:
                    runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as e:
                if "--help" in argv and e.code == 0:
                    raise Parsed() from e
                pytest.fail(f"{doc}: `{line}` is refused: {capsys.readouterr().err.strip()} (exit {e.code})")
        if folder == ROOT:
            for name in {a.split("/")[2] for a in argv if a.startswith("artifacts/runs/")}:
                assert (ROOT / "artifacts/runs" / name).exists() or name in made_runs() or name.isupper(), \
                    f"{doc}: `{line}` names artifacts/runs/{name}, which is neither shipped nor made by a documented " \
                    "command"
