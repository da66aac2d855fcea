"""The `privacy-hub` command line and configuration (API.md "Operating it")."""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from privacy_hub.cli import main
from privacy_hub.config import ConfigError, Settings, check_secret
from tests.pg import PostgresServer


def run(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"PRIVACY_HUB_INSTANCE_PATH": str(tmp_path / "instance")}


def test_init_creates_instance_with_private_key_files(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, "init")
    assert result.exit_code == 0, result.output
    inst = tmp_path / "instance"
    for name in ("root.key", "secret.key"):
        mode = stat.S_IMODE((inst / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert (inst / "root.key").stat().st_size == 32
    assert (inst / "hub.db").exists()
    again = run(env, "init")
    assert again.exit_code == 0  # safe to run twice
    assert (inst / "root.key").stat().st_size == 32


def test_init_demo_prints_a_working_key_every_time(env: dict[str, str]) -> None:
    from privacy_hub.app import create_app

    first = run(env, "init", "--demo")
    key1 = re.search(r"^api_key: (\S+)$", first.output, re.M)
    assert key1, first.output
    second = run(env, "init", "--demo")
    key2 = re.search(r"^api_key: (\S+)$", second.output, re.M)
    assert key2 and key2.group(1) != key1.group(1)
    os.environ.update(env)
    try:
        client = create_app().test_client()
    finally:
        del os.environ["PRIVACY_HUB_INSTANCE_PATH"]
    assert client.get("/api/v1/audit/verify", headers={
        "Authorization": f"Bearer {key2.group(1)}"}).json["ok"] is True
    assert client.get("/api/v1/audit/verify", headers={
        "Authorization": f"Bearer {key1.group(1)}"}).status_code == 401
    lookup = client.post("/api/v1/customers/lookup", json={"email": "mila.weber@example.com"},
                         headers={"Authorization": f"Bearer {key2.group(1)}"})
    assert len(lookup.json["items"]) == 1


def test_systems_create_prints_key_and_secret_on_their_own_lines(env: dict[str, str]) -> None:
    run(env, "init")
    result = run(env, "systems", "create", "newsletter", "--scope", "consents:read",
                 "--scope", "customers:read", "--purpose", "marketing.email",
                 "--webhook-url", "http://127.0.0.1:9000/hook")
    assert result.exit_code == 0, result.output
    assert re.search(r"^api_key: phk_\S+$", result.output, re.M)
    assert re.search(r"^webhook_secret: whsec_\S+$", result.output, re.M)
    dup = run(env, "systems", "create", "newsletter", "--scope", "consents:read")
    assert dup.exit_code != 0 and "already exists" in dup.output
    bad = run(env, "systems", "create", "other", "--scope", "everything")
    assert bad.exit_code != 0 and "unknown scope" in bad.output
    listed = run(env, "systems", "list")
    assert "newsletter" in listed.output


def test_staff_create_reads_the_password_from_stdin_and_prints_the_totp_uri(
        env: dict[str, str]) -> None:
    """API.md "Operating it": `staff create EMAIL --role ...`, password on standard input,
    `totp_uri: otpauth://...` on a line of its own; list, reset-totp and disable follow."""
    run(env, "init")
    result = run(env, "staff", "create", "Ada.DPO@Staff.example", "--role", "dpo",
                 input="a long enough password\n")
    assert result.exit_code == 0, result.output
    uri = re.search(r"^totp_uri: (otpauth://totp/\S+)$", result.output, re.M)
    assert uri and "secret=" in uri.group(1)
    assert "a long enough password" not in result.output
    short = run(env, "staff", "create", "bo@staff.example", "--role", "agent", input="short\n")
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    dup = run(env, "staff", "create", "ada.dpo@staff.example", "--role", "agent",
              input="a long enough password\n")
    assert dup.exit_code != 0 and "exists already" in dup.output
    listed = run(env, "staff", "list").output
    assert re.search(r"\tdpo\tactive\tada\.dpo@staff\.example$", listed, re.M)
    reset = run(env, "staff", "reset-totp", "ada.dpo@staff.example")
    new_uri = re.search(r"^totp_uri: (\S+)$", reset.output, re.M)
    assert new_uri and new_uri.group(1) != uri.group(1)
    assert run(env, "staff", "disable", "ada.dpo@staff.example").exit_code == 0
    assert "\tdisabled\t" in run(env, "staff", "list").output


def test_init_demo_prints_how_to_sign_in_as_the_demo_dpo(env: dict[str, str]) -> None:
    first = run(env, "init", "--demo").output
    assert re.search(r"^demo DPO: dpo@example\.com password: \S+$", first, re.M)
    secret = re.search(r"^totp_secret: ([A-Z2-7]+)$", first, re.M)
    assert secret
    code = run(env, "staff", "code", secret.group(1)).output.strip()
    assert re.fullmatch(r"\d{6}", code)
    # not signed in yet: the next init prints a fresh secret that works, not a stale one
    again = run(env, "init", "--demo").output
    assert re.search(r"^totp_secret: ([A-Z2-7]+)$", again, re.M)


def test_keys_rotate_and_audit_verify(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "init", "--demo")
    rotated = run(env, "keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
    assert "version 2 is primary" in rotated.output
    verify = run(env, "audit", "verify")
    assert verify.exit_code == 0 and "ok: the chain is intact" in verify.output
    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'hub.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET action = 'customer.read' WHERE seq = 3"))
    engine.dispose()
    broken = run(env, "audit", "verify")
    assert broken.exit_code == 1
    assert "BROKEN at seq 3" in broken.output


def test_keys_rotate_receipts_starts_a_new_key_and_the_jwks_keeps_the_old_one(
        env: dict[str, str]) -> None:
    """`keys rotate --receipts`: a new receipt key; the old one stays published (R-CREC-04)."""
    from privacy_hub.app import create_app

    run(env, "init", "--demo")
    rotated = run(env, "keys", "rotate", "--receipts")
    assert rotated.exit_code == 0, rotated.output
    new, old = re.search(r"receipt signing key (\S+) signs from now on; retired: (\S+) ",
                         rotated.output).groups()  # type: ignore[union-attr]
    assert new != old
    app = create_app(Settings.from_env(env))
    jwks = app.test_client().get("/api/v1/keys/receipts").json
    app.extensions["privacy_hub"].close()
    assert [k["kid"] for k in jwks["keys"]] == [new, old]
    assert run(env, "audit", "verify").exit_code == 0


def test_db_upgrade_is_idempotent(env: dict[str, str]) -> None:
    run(env, "init")
    for _ in range(2):
        result = run(env, "db", "upgrade")
        assert result.exit_code == 0 and "latest schema" in result.output


def test_serve_refuses_an_uninitialised_instance_with_a_hint(env: dict[str, str]) -> None:
    result = run(env, "serve", "--port", "1")
    assert result.exit_code != 0
    assert "privacy-hub init" in result.output


def test_outside_the_embedded_default_a_missing_secret_is_named(
        tmp_path: Path, pg_server: PostgresServer) -> None:
    url = pg_server.create_database("cfg_" + secrets.token_hex(4))
    env = {"PRIVACY_HUB_INSTANCE_PATH": str(tmp_path / "i"), "PRIVACY_HUB_DATABASE_URL": url}
    result = run(env, "init")
    assert result.exit_code != 0
    assert "PRIVACY_HUB_SECRET_KEY is not set" in result.output
    weak = run({**env, "PRIVACY_HUB_SECRET_KEY": "a" * 40}, "init")
    assert weak.exit_code != 0 and "PRIVACY_HUB_SECRET_KEY is weak" in weak.output
    short = run({**env, "PRIVACY_HUB_SECRET_KEY": "abc123"}, "init")
    assert short.exit_code != 0 and "too short" in short.output
    no_root = run({**env, "PRIVACY_HUB_SECRET_KEY": secrets.token_urlsafe(48)}, "init")
    assert no_root.exit_code != 0 and "PRIVACY_HUB_ROOT_KEY_FILE is not set" in no_root.output
    assert not (tmp_path / "i" / "root.key").exists()  # no key of its own, silently
    ok = run({**env, "PRIVACY_HUB_SECRET_KEY": secrets.token_urlsafe(48),
              "PRIVACY_HUB_ROOT_KEY_FILE": str(tmp_path / "keys" / "root.key")},
             "init", "--demo")
    assert ok.exit_code == 0, ok.output
    assert "api_key: phk_" in ok.output


def test_outside_the_embedded_default_the_root_key_must_be_given(tmp_path: Path) -> None:
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "root.key").write_bytes(b"k" * 32)  # not used for PostgreSQL
    settings = Settings(instance_path=tmp_path / "instance",
                        database_url="postgresql+psycopg://u@127.0.0.1:1/x",
                        secret_key=secrets.token_urlsafe(48).encode())
    with pytest.raises(ConfigError, match="PRIVACY_HUB_ROOT_KEY_FILE"):
        settings.resolved()


def test_root_key_readable_by_others_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "init")
    (tmp_path / "instance" / "root.key").chmod(0o644)
    result = run(env, "audit", "verify")
    assert result.exit_code != 0
    assert "chmod 600" in result.output


def test_secret_checks() -> None:
    check_secret("X", secrets.token_urlsafe(48).encode())
    with pytest.raises(ConfigError, match="X is too short"):
        check_secret("X", b"short")
    with pytest.raises(ConfigError, match="X is weak"):
        check_secret("X", b"ab" * 30)


def test_settings_from_env_reads_every_documented_variable(tmp_path: Path) -> None:
    s = Settings.from_env({
        "PRIVACY_HUB_INSTANCE_PATH": str(tmp_path), "PRIVACY_HUB_BASE_URL": "https://hub.example/",
        "PRIVACY_HUB_SMTP_HOST": "mail", "PRIVACY_HUB_SMTP_PORT": "2525",
        "PRIVACY_HUB_SMTP_STARTTLS": "true", "PRIVACY_HUB_MAIL_FROM": "p@shop.example",
        "PRIVACY_HUB_DPO_EMAIL": "dpo@shop.example", "PRIVACY_HUB_KEYSTORE_URL": "sqlite:///k.db"})
    assert s.database_url == f"sqlite:///{tmp_path / 'hub.db'}" and s.embedded
    assert s.base_url == "https://hub.example" and s.smtp_port == 2525 and s.smtp_starttls
    assert s.keystore_url == "sqlite:///k.db" and s.dpo_email == "dpo@shop.example"
    with pytest.raises(ConfigError, match="PRIVACY_HUB_SMTP_PORT"):
        Settings.from_env({"PRIVACY_HUB_SMTP_PORT": "many"})


def test_key_operations_are_audited(env: dict[str, str], tmp_path: Path) -> None:
    """Key creation at init and rotation leave audit entries without key material."""
    run(env, "init")
    run(env, "keys", "rotate")
    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'hub.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action, details FROM audit_entries ORDER BY seq")).all()
    engine.dispose()
    actions = [r.action for r in rows]
    assert actions.count("key.created") == 6  # the first key-encryption key and five hub keys
    assert actions[-1] == "key.rotated"
    root_key = (tmp_path / "instance" / "root.key").read_bytes()
    assert all(root_key.hex() not in r.details for r in rows)


def test_mail_show_prints_the_outbox_mail_with_its_link_and_list_names_it(tmp_path: Path) -> None:
    """The conformance issue: tokens never reach a log, so the developer reads the
    embedded default's mail with `privacy-hub mail list` / `mail show`."""
    outbox = tmp_path / "instance" / "outbox"
    outbox.mkdir(parents=True)
    message = ("To: someone@example.org\r\nSubject: Your sign-in link\r\n"
               "Date: Mon, 07 Dec 2026 14:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
               "Open http://127.0.0.1:8000/portal/sign-in/confirm?token=abc123\r\n")
    (outbox / "20261207T140000-0193a1b2-job.eml").write_bytes(message.encode())
    env = {"PRIVACY_HUB_INSTANCE_PATH": str(tmp_path / "instance")}
    listed = CliRunner().invoke(main, ["mail", "list"], env=env)
    assert listed.exit_code == 0 and "Your sign-in link" in listed.output
    shown = CliRunner().invoke(main, ["mail", "show", "latest"], env=env)
    assert shown.exit_code == 0 and "token=abc123" in shown.output
    missing = CliRunner().invoke(main, ["mail", "show", "nope"], env=env)
    assert missing.exit_code != 0 and "mail list" in missing.output


def test_python_dash_m_privacy_hub_is_the_whole_command() -> None:
    """`python -m privacy_hub` (the tests' and benches' fallback) knows every group,
    including those that join from their own modules (staff, retention)."""
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "privacy_hub", "--help"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    for group in ("serve", "import", "keys", "retention", "staff"):
        assert f"  {group} " in shown, shown
