"""The README and examples stay true: option tables match the declarations, the examples run."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_config_tables() -> object:
    spec = importlib.util.spec_from_file_location(
        "config_tables", ROOT / "docs" / "config_tables.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_option_tables_match_the_declarations() -> None:
    module = load_config_tables()
    text = (ROOT / "README.md").read_text()
    assert module.render(text) == text, "run: python docs/config_tables.py"  # type: ignore[attr-defined]
    for name in module.tables():  # type: ignore[attr-defined]
        assert f"<!-- config:{name} -->" in text


def test_readme_python_examples_run(tmp_path: pathlib.Path) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for index, block in enumerate(blocks):
        script = tmp_path / f"example_{index}.py"
        script.write_text(block.replace("/tmp/objstore-demo", str(tmp_path / "demo")))
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                cwd=tmp_path, check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr


def test_quickstart_runs() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Done." in result.stdout
    assert "AlreadyExistsError" in result.stdout
