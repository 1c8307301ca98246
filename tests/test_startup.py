"""CLI start-up: the entry point, every --help, --version, `recipes` and usage errors import no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "fastai", "torchvision", "sklearn", "librosa", "timm", "matplotlib")
LOADED = f"sorted(m for m in {HEAVY!r} if m in sys.modules)"


def python(code: str) -> str:
    """Run `code` in a fresh interpreter; its standard output."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_the_cli_imports_no_heavy_library():
    assert python(f"import mer_fastai.cli.main, sys; print({LOADED})").strip() == "[]"


def test_every_help_and_a_usage_error_import_no_heavy_library():
    code = f"""
import json, sys
import typer.main
from mer_fastai.cli.main import app

def paths(command, prefix):
    yield prefix
    for name, sub in getattr(command, "commands", {{}}).items():
        yield from paths(sub, [*prefix, name])

codes = {{}}
helps = [[*path, "--help"] for path in paths(typer.main.get_command(app), [])]
for args in [*helps, ["--version"], ["recipes"], ["train"], ["prepare", "x", "--size", "1"]]:
    try:
        app(args, prog_name="mer-fastai")
    except SystemExit as exc:
        codes[" ".join(args)] = exc.code
print(json.dumps({{"codes": codes, "loaded": {LOADED}}}))
"""
    report = json.loads(python(code).strip().splitlines()[-1])
    codes = report["codes"]
    assert {"--help", "prepare --help", "train --help", "gan train --help", "recipes show --help"} <= set(codes)
    assert len(codes) >= 17, codes
    assert all(code == 0 for args, code in codes.items() if args.endswith("--help")), codes
    assert codes["recipes"] == 0, codes  # the listing reads every built-in recipe
    assert codes["--version"] == 0, codes
    assert codes["train"] == 2 and codes["prepare x --size 1"] == 2, codes  # missing argument, unknown option
    assert report["loaded"] == []
