"""`pip install .` gives a working `privacy-hub`: templates and migrations ship as package data."""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(ROOT)], check=True,
                   capture_output=True)
    (built,) = out.glob("privacy_hub-*.whl")
    return built


def test_wheel_contains_templates_migrations_and_every_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("privacy_hub/templates/api_docs.html", "privacy_hub/migrations/env.py",
                     "privacy_hub/templates/pages/confirm.html", "privacy_hub/static/hub.css",
                     "privacy_hub/migrations/script.py.mako", "audit/__init__.py",
                     "consent/__init__.py", "dsar/__init__.py", "privacy_hub/cli.py"):
        assert required in names, required
    assert any(re.match(r"privacy_hub/migrations/versions/0001_.*\.py$", n) for n in names)
    assert any(re.match(r"privacy_hub/migrations/keystore_versions/k0001_.*\.py$", n) for n in names)
    assert not any(n.startswith("tests/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "privacy-hub = privacy_hub.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_initialises_and_serves_docs(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    target = Path(subprocess.run([str(py), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    # Dependencies come from the test environment; the hub itself only from the wheel.
    deps = [p for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
            if "site-packages" in p]
    (target / "deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    script = env_dir / "bin" / "privacy-hub"
    script.write_text(f"#!{py}\nimport sys\nfrom privacy_hub.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRIVACY_HUB_", "PYTHON"))}
    env["PRIVACY_HUB_INSTANCE_PATH"] = str(tmp_path / "instance")
    where = subprocess.run([str(py), "-c", "import privacy_hub;print(privacy_hub.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.startswith(str(target)), where.stdout  # not the source tree
    init = subprocess.run([str(script), "init", "--demo"], capture_output=True, text=True,
                          cwd=tmp_path, env=env)
    assert init.returncode == 0, init.stderr
    assert re.search(r"^api_key: phk_\S+$", init.stdout, re.M)
    docs = subprocess.run([str(py), "-c", (
        "from privacy_hub.app import create_app\n"
        "c = create_app().test_client()\n"
        "r = c.get('/api/docs'); assert r.status_code == 200, r.status_code\n"
        "assert b'/api/v1/customers' in r.data\n"
        "print('docs ok')")], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert docs.returncode == 0, docs.stderr
    assert "docs ok" in docs.stdout


def test_layers_hold_privacy_hub_over_dsar_over_consent_over_audit() -> None:
    """DESIGN.md: lower packages never import higher ones, and only privacy_hub imports Flask."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout
