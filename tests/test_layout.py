"""The tree shows the architecture: each package depends only on the packages below it.

`LAYERS` is the architecture, top down; a package may import its own modules and those of any
layer below, never one above (an arrow running back up, or a cycle). The README's layout table
names every package, and every path it names exists.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"benchmarks"}),
    frozenset({"service"}),
    frozenset({"worker"}),
    frozenset({"starter"}),
    frozenset({"workflows"}),
    frozenset({"activities"}),
    frozenset({"demo"}),
    frozenset({"accounts", "registry"}),
    frozenset({"store"}),
    frozenset({"kit"}),
    frozenset({"core", "contract"}),
)
"""Top down. `demo` sits above `accounts` (it registers its accounts) and below everything
that runs it; `kit` (the product kit: declarations and the purge engine, which product teams
import) stands on `contract` alone, under everything of this service that uses it; `core`
(settings, payload codec, logging) and `contract` are the ground."""

PACKAGES = frozenset().union(*LAYERS)
LAYER_OF = {package: index for index, layer in enumerate(LAYERS) for package in layer}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 120


def _product_modules() -> list[Path]:
    modules = [REPO_ROOT / "worker.py"]
    for package in sorted(PACKAGES - {"worker", "benchmarks"}):
        modules += sorted((REPO_ROOT / package).rglob("*.py"))
    return modules


def _imported_packages(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    return imported & PACKAGES


def _package_of(path: Path) -> str:
    relative = path.relative_to(REPO_ROOT)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def test_every_top_level_package_has_a_layer() -> None:
    on_disk = {
        path.parent.name
        for path in REPO_ROOT.glob("*/__init__.py")
        if path.parent.name not in {"tests"}
    }
    assert on_disk | {"worker"} == set(PACKAGES)


@pytest.mark.parametrize(
    "path", _product_modules(), ids=lambda path: str(path.relative_to(REPO_ROOT))
)
def test_imports_run_only_downwards(path: Path) -> None:
    package = _package_of(path)
    upwards = {
        imported
        for imported in _imported_packages(path)
        if LAYER_OF[imported] < LAYER_OF[package]
        or (LAYER_OF[imported] == LAYER_OF[package] and imported != package)
    }
    assert not upwards, f"{path.relative_to(REPO_ROOT)} ({package}) imports {sorted(upwards)}"


def test_no_module_or_function_is_too_long_to_read() -> None:
    too_long = []
    for path in _product_modules():
        source = path.read_text()
        name = path.relative_to(REPO_ROOT)
        if (lines := source.count("\n")) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if (length := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}: {node.name} is {length} lines")
    assert not too_long, too_long


def test_the_readme_layout_table_matches_the_tree() -> None:
    """Paths in a row's first cell are the repository's; file names in its description are in
    that row's folder."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    paths: set[str] = set()
    for row in re.findall(r"^\| (.+?) \| (.*) \|$", section, flags=re.M):
        named, described = (re.findall(r"`([\w./-]+)`", cell) for cell in row)
        if not named:
            continue
        folder = named[0] if named[0].endswith("/") else str(Path(named[0]).parent) + "/"
        paths |= set(named)
        paths |= {folder + name for name in described if name.endswith((".py", "/"))}
    missing = sorted(path for path in paths if not (REPO_ROOT / path).exists())
    assert not missing, f"the layout table names paths that do not exist: {missing}"
    tops = {path.split("/")[0].removesuffix(".py") for path in paths}
    assert PACKAGES <= tops, f"the layout table leaves out {sorted(PACKAGES - tops)}"


def test_the_installed_distribution_holds_every_package() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    included = config["packages"]["find"]["include"]
    for package in PACKAGES - {"worker", "benchmarks"}:
        assert f"{package}*" in included, f"pyproject.toml does not install {package}"
    assert config["py-modules"] == ["worker"]


def test_every_module_of_activities_defines_activities() -> None:
    """Storage helpers, hashing, registries live elsewhere: `activities/` is the activities."""
    for path in sorted((REPO_ROOT / "activities").glob("*.py")):
        if path.name != "__init__.py":
            assert "@activity.defn" in path.read_text(), f"{path.name} defines no activity"


def test_the_kit_stands_on_contract_temporalio_and_asyncpg_alone() -> None:
    """Product teams import `kit` into their own workers: it must not drag in this service
    (settings, store, registry, activities) nor any other library."""
    allowed = {"kit", "contract", "temporalio", "asyncpg", *sys.stdlib_module_names}
    for path in sorted((REPO_ROOT / "kit").rglob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        assert imported <= allowed, f"{path.relative_to(REPO_ROOT)} imports {imported - allowed}"
