"""No password of a storage URL in any file, event, log line or message: a real sweep against
a real PostgreSQL server (tests/pg_server.py), then everything it wrote is searched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_sweep_shared import RECIPE  # noqa: E402 - the shared-sweep recipe, one source

from kvision.sweep.storage import shown, without_password  # noqa: E402

SECRET = "Pw-7f3Kq9-not-in-any-file"  # distinctive: any hit is the password, nothing else


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://kv:{SECRET}@127.0.0.1:5432/db",
        f"postgresql+psycopg://kv:{SECRET}@db.example/sweeps?sslmode=require",
        f"postgresql://kv@127.0.0.1/db?password={SECRET}",
        f"mysql://kv:{SECRET}@127.0.0.1/db",
    ],
)
def test_urls_are_stored_without_and_shown_with_a_masked_password(url):
    assert SECRET not in without_password(url) and "kv" in without_password(url)
    assert SECRET not in shown(url) and "***" in shown(url).replace("%2A", "*")


def _role(postgres) -> str:
    """A login role whose password is SECRET, and a fresh database it owns: its URL."""
    db = postgres.create_database()
    sql = f"CREATE ROLE kvsecret LOGIN PASSWORD '{SECRET}'; ALTER DATABASE {db} OWNER TO kvsecret;"
    postgres._run(
        "psql",
        "-h",
        str(postgres.root),
        "-p",
        str(postgres.port),
        "-U",
        "kvision",
        "-d",
        db,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    )
    return f"postgresql://kvsecret:{SECRET}@127.0.0.1:{postgres.port}/{db}"


@pytest.mark.slow(seconds=15)  # two trial processes (torch + Keras each)
def test_a_real_sweep_writes_the_password_nowhere(postgres, tmp_path):
    recipe = tmp_path / "shared.toml"
    recipe.write_text(
        RECIPE.replace("trials = 9", "trials = 2")
        .replace("epochs = 24", "epochs = 2")
        .replace("[output]", f'[output]\nruns_dir = "{tmp_path / "runs"}"')
    )
    url = _role(postgres)
    folder = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvision",
            "sweep",
            str(recipe),
            "--storage",
            url,
            "--sweep-dir",
            str(folder),
            "--heartbeat",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10 and (folder / "sweep_meta.json") in written
    holding = [p for p in written if SECRET.encode() in p.read_bytes()]
    assert not holding, f"the password is in {holding}"
    assert SECRET not in proc.stdout + proc.stderr
    # what the sweep keeps to reconnect is the URL itself, only without the password
    assert f"kvsecret@127.0.0.1:{postgres.port}" in (folder / "sweep_meta.json").read_text()
    report = subprocess.run(
        [sys.executable, "-m", "kvision", "sweep", "report", url],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert SECRET not in report.stdout + report.stderr
