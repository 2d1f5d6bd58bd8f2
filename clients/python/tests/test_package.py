"""The package as shipped: a wheel that is private, typed and dependency-free, a core that
imports only the standard library, and source that Python 3.9 runs."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import List, Tuple

import pytest
from conftest import PACKAGE

SOURCE = PACKAGE / "src" / "watchwire_receiver"
MODULES = sorted(SOURCE.glob("*.py"))
ADAPTERS = {"starlette", "flask", "django"}


def tool(module: str, at_least: Tuple[int, ...] = ()) -> None:
    """Skips (fails under CI) when a checking tool of the test setup is missing."""
    try:
        version = importlib.metadata.version(module)
        __import__(module)
        found = tuple(int(part) for part in version.split(".")[: len(at_least)])
        if found < at_least:
            raise ImportError(f"version {version}")
    except (ImportError, importlib.metadata.PackageNotFoundError) as e:
        message = f"{module} {'.'.join(map(str, at_least))} or later is not installed ({e}); bash clients/python/ci-setup.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_every_module_parses_as_python_3_9_and_defers_annotations() -> None:
    assert len(MODULES) >= 12
    for module in MODULES:
        source = module.read_text(encoding="utf-8")
        ast.parse(source, filename=str(module), feature_version=(3, 9))
        assert "from __future__ import annotations" in source, module.name


def test_vermin_finds_nothing_newer_than_python_3_9() -> None:
    tool("vermin")
    result = subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "-t=3.9-", "--violations", "--eval-annotations",
         "--no-tips", "--no-parse-comments", str(SOURCE), str(PACKAGE / "tests")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes() -> None:
    tool("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
         str(SOURCE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_core_imports_only_the_standard_library() -> None:
    if not hasattr(sys, "stdlib_module_names"):
        pytest.skip("sys.stdlib_module_names is Python 3.10+")
    # Block the frameworks: the core and the http.server adapter must not need them.
    code = (
        "import sys\n"
        "for name in ('starlette', 'fastapi', 'flask', 'werkzeug', 'django', 'httpx'):\n"
        "    sys.modules[name] = None\n"
        "before = set(sys.modules)\n"
        "import watchwire_receiver, watchwire_receiver.http_server\n"
        "loaded = {m.split('.')[0] for m in set(sys.modules) - before if sys.modules[m] is not None}\n"
        "print(sorted(loaded - set(sys.stdlib_module_names) - {'watchwire_receiver'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PACKAGE / "src")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_each_adapter_is_its_own_module_that_the_core_never_imports() -> None:
    for module in MODULES:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
        } | {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        frameworks = imported & (ADAPTERS | {"fastapi", "werkzeug"})
        if module.stem in ADAPTERS:
            assert frameworks == {module.stem}, module.name
        else:
            assert not frameworks, module.name
            relative = {
                node.module
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level == 1
            }
            assert not relative & ADAPTERS, module.name


def test_the_wheel_is_private_typed_and_without_dependencies(tmp_path: Path) -> None:
    tool("setuptools", (70, 1))  # builds wheels without the `wheel` package
    # Build from a copy, so that nothing is written into the source tree.
    project = tmp_path / "project"
    project.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(PACKAGE / name, project / name)
    shutil.copytree(PACKAGE / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "-q", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("watchwire_receiver-0.1.0-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = wheel.read(metadata_name).decode("utf-8")
    assert {f"watchwire_receiver/{m.name}" for m in MODULES} | {"watchwire_receiver/py.typed"} <= names
    assert not [n for n in names if n.startswith("tests/") or "conftest" in n]
    lines: List[str] = metadata.splitlines()
    assert "Name: watchwire-receiver" in lines
    assert "Classifier: Private :: Do Not Upload" in lines
    assert "Requires-Python: >=3.9" in lines
    requirements = [line for line in lines if line.startswith("Requires-Dist:")]
    assert requirements and all("extra ==" in line for line in requirements), requirements


def test_the_readme_links_only_to_files_of_the_repository() -> None:
    import re

    readme = (PACKAGE / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)]+)\)", readme)
    assert targets, "the README links to the API reference and the vectors"
    for target in targets:
        assert not re.match(r"[a-z]+:", target), f"a link out of the repository: {target}"
        path = (PACKAGE / target.split("#")[0]).resolve()
        assert path.exists(), target
    assert not re.search(r"<https?://", readme)
