"""README "Running several nodes", run as written, on a real PostgreSQL server.

The shell block of that README section is parsed and run with bash: its setup lines, its
``export`` lines and its three ``privacy-hub`` commands, with only the machine-specific
values put in (the database URL, folders, loopback ports). Node A runs `init`, nodes A and
B run `serve --no-worker`, one `privacy-hub worker` runs beside them: B serves what A
wrote, the worker sends the mail a request on B asked for. A node without the root key
file, or with another root key, refuses to start with one line and no traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from privacy_hub.vault.root import FileRootKey
from tests.conftest import SEED_EMAIL
from tests.e2e.live import free_port, wait_for
from tests.pg import PostgresServer

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent  # privacy-hub and python3 of this environment
KEYS, INSTANCE = "/etc/privacy-hub", "/srv/privacy-hub"
SERVE = "privacy-hub serve --no-worker --host 0.0.0.0 --port 8000"


@dataclass
class Steps:
    """The README's block: setup lines, export lines, and the privacy-hub commands."""

    setup: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


def readme_steps() -> Steps:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Running several nodes", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no shell block in README's 'Running several nodes'"
    steps = Steps()
    for line in block.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            steps.exports.append(line)
        elif line.startswith("privacy-hub "):
            steps.commands.append(line)
        else:
            assert not steps.exports, f"a setup line after the exports: {line}"
            steps.setup.append(line)
    return steps


@dataclass
class Node:
    """One machine: its own key folder, the shared instance folder and database."""

    name: str
    keys: Path
    instance: Path
    database_url: str
    base_url: str
    log_dir: Path

    def script(self, steps: Steps, command: str, *, exports: list[str] | None = None) -> str:
        lines = [*(steps.exports if exports is None else exports), command]
        text = "\n".join(lines)
        text = re.sub(r"PRIVACY_HUB_DATABASE_URL=\S+",
                      f"PRIVACY_HUB_DATABASE_URL={self.database_url}", text)
        text = re.sub(r"PRIVACY_HUB_BASE_URL=\S+", f"PRIVACY_HUB_BASE_URL={self.base_url}", text)
        return text.replace(KEYS, str(self.keys)).replace(INSTANCE, str(self.instance))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_HUB_")}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["bash", "-euc", script], env=self.env(), capture_output=True,
                                text=True, timeout=timeout, check=False,
                                cwd=self.log_dir)
        with open(self.log_dir / f"{self.name}.log", "a", encoding="utf-8") as fh:
            fh.write(f"$ {script}\n-> {result.returncode}\n{result.stdout}{result.stderr}\n")
        return result

    @contextlib.contextmanager
    def process(self, script: str) -> Iterator[subprocess.Popen[bytes]]:
        log = open(self.log_dir / f"{self.name}-process.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(["bash", "-euc", script], env=self.env(), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.log_dir)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            log.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.log_dir.glob(f"{self.name}*.log")))


@pytest.fixture
def database(pg_server: PostgresServer) -> Iterator[str]:
    name = f"nodes_{uuid.uuid4().hex[:12]}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


def _node(tmp_path: Path, name: str, database: str) -> Node:
    port = free_port()
    folder = tmp_path / name
    folder.mkdir()
    return Node(name=name, keys=folder / "etc", instance=tmp_path / "shared-instance",
                database_url=database, base_url=f"http://127.0.0.1:{port}", log_dir=folder)


def _serve(node: Node, steps: Steps) -> str:
    port = node.base_url.rsplit(":", 1)[1]
    return node.script(steps, SERVE.replace("--host 0.0.0.0 --port 8000",
                                            f"--host 127.0.0.1 --port {port}"))


def _ready(node: Node, proc: subprocess.Popen[bytes]) -> None:
    def up() -> bool:
        assert proc.poll() is None, f"{node.name} exited:\n{node.logs()[-3000:]}"
        try:
            return requests.get(node.base_url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    wait_for(f"node {node.name} to serve", up, timeout=60)


def _refuses(node: Node, script: str, words: str) -> None:
    """The command exits non-zero, saying one line that contains ``words``, no traceback."""
    result = node.run(script, timeout=60)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    assert words in output, output


def test_two_nodes_and_a_worker_run_as_the_readme_says(tmp_path: Path, database: str) -> None:
    steps = readme_steps()
    assert steps.commands == ["privacy-hub init", SERVE, "privacy-hub worker"], steps.commands
    assert any("PRIVACY_HUB_ROOT_KEY_FILE" in e for e in steps.exports)
    a, b, w = (_node(tmp_path, n, database) for n in ("a", "b", "worker"))

    # Node A: the setup lines and init (README's first and third commands).
    setup = a.run(a.script(steps, "\n".join(steps.setup), exports=[]))
    assert setup.returncode == 0, setup.stderr
    init = a.run(a.script(steps, steps.commands[0]))
    assert init.returncode == 0, init.stdout + init.stderr
    root_key = a.keys / "root.key"
    assert root_key.stat().st_mode & 0o777 == 0o600
    # "copy secret.key and root.key (mode 0600) to node B and the worker"
    for other in (b, w):
        other.keys.mkdir(mode=0o700)
        for name in ("secret.key", "root.key"):
            shutil.copy2(a.keys / name, other.keys / name)
    created = a.run(a.script(steps, "privacy-hub systems create shop --scope customers:write "
                                    "--scope customers:read --scope requests:write"))
    assert created.returncode == 0, created.stderr
    key = re.search(r"^api_key: (\S+)$", created.stdout, re.M).group(1)  # type: ignore[union-attr]
    auth = {"Authorization": f"Bearer {key}"}

    with a.process(_serve(a, steps)) as serving_a, b.process(_serve(b, steps)) as serving_b:
        _ready(a, serving_a)
        _ready(b, serving_b)
        made = requests.post(a.base_url + "/api/v1/customers", headers=auth, timeout=10,
                             json={"email": SEED_EMAIL, "first_name": "Ada"})
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        # Node B reads what node A wrote, decrypted with the same keys.
        seen = requests.get(f"{b.base_url}/api/v1/customers/{cid}", headers=auth, timeout=10)
        assert seen.status_code == 200 and seen.json()["first_name"] == "Ada", seen.text
        # A request made on B mails its subject: the worker (and only it) sends it.
        asked = requests.post(b.base_url + "/api/v1/requests", headers=auth, timeout=10,
                              json={"type": "access", "email": SEED_EMAIL})
        assert asked.status_code == 201, asked.text
        with w.process(w.script(steps, steps.commands[2])):
            wait_for("the worker to send the verification mail", lambda: list(
                (a.instance / "outbox").glob("*.eml")), timeout=60)

        # Another node without the root key file, or with another root key, refuses.
        c = _node(tmp_path, "c", database)
        c.keys.mkdir(mode=0o700)
        shutil.copy2(a.keys / "secret.key", c.keys / "secret.key")
        without = [e for e in steps.exports if "PRIVACY_HUB_ROOT_KEY_FILE" not in e]
        for command in (steps.commands[0], _serve(c, steps).splitlines()[-1], steps.commands[2]):
            _refuses(c, c.script(steps, command, exports=without), "PRIVACY_HUB_ROOT_KEY_FILE")
        assert not (c.keys / "root.key").exists() and not (c.instance / "root.key").exists()
        # The variable naming a file that is not there: init makes no new key for a
        # database that has keys.
        _refuses(c, c.script(steps, steps.commands[0]), "already has keys")
        assert not (c.keys / "root.key").exists()
        FileRootKey.create(c.keys / "root.key")  # another root key
        for command in (steps.commands[0], _serve(c, steps).splitlines()[-1], steps.commands[2],
                        "privacy-hub systems create other --scope customers:read"):
            _refuses(c, c.script(steps, command), "does not open this database's keys")

        # The running nodes were not disturbed.
        again = requests.get(f"{a.base_url}/api/v1/customers/{cid}", headers=auth, timeout=10)
        assert again.status_code == 200
    for node in (a, b, w, c):
        assert "Traceback" not in node.logs()
