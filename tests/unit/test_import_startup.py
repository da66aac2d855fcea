"""`privacy-hub import` starts without the web app: its schemas live outside the API."""

import subprocess
import sys


def test_the_importer_loads_without_flask() -> None:
    code = ("import sys, privacy_hub.importer; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('flask', 'flask_smorest', 'werkzeug', 'webargs') or m.startswith('privacy_hub.api')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
