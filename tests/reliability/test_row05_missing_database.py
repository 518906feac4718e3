"""Row 5: the SQLite file deleted between runs.

Before: silently recreated; history lost; sites already alerted were alerted again
as "new". Now a missing database beside earlier outputs is an error naming both,
until the user starts over with ``asmspotter db init``.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from asmspotter.cli import app
from asmspotter.storage.engine import check_database_present
from asmspotter.storage.errors import DatabaseMissingError


def _outputs_of_an_earlier_run(data_dir):
    run_dir = data_dir / "outputs" / "tiny" / "2024-01-31"
    run_dir.mkdir(parents=True)
    (run_dir / "sites.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    return run_dir


def test_missing_database_beside_outputs_is_an_error_until_db_init(tmp_path, monkeypatch):
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings

    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(tmp_path))
    open_store.cache_clear()
    settings = get_settings()
    url = settings.resolved_database_url
    db_file = tmp_path / "asmspotter.db"

    # A fresh data folder: the database is created as before.
    open_store(url).upsert_aoi("tiny", "Tiny", 32621)
    assert db_file.exists()
    run_dir = _outputs_of_an_earlier_run(tmp_path)
    open_store.cache_clear()
    open_store(url)  # database and outputs both there: fine

    db_file.unlink()
    open_store.cache_clear()
    with pytest.raises(DatabaseMissingError) as caught:
        open_store(url)
    message = str(caught.value)
    assert str(db_file) in message and str(tmp_path / "outputs") in message
    assert "asmspotter db init" in message
    assert not db_file.exists(), "nothing was recreated behind the user's back"

    # The CLI says the same and exits 1 (run never starts).
    result = CliRunner().invoke(app, ["sites", "list", "tiny"])
    assert result.exit_code != 0 and not db_file.exists()

    # Starting over is explicit.
    result = CliRunner().invoke(app, ["db", "init"])
    assert result.exit_code == 0, result.output
    assert "created, empty" in result.output and db_file.exists()
    open_store.cache_clear()
    assert open_store(url).sites("tiny") == []
    result = CliRunner().invoke(app, ["db", "init"])
    assert result.exit_code == 0 and "already exists" in result.output
    assert run_dir.exists(), "earlier outputs are never touched"


def test_only_sqlite_files_are_checked(tmp_path):
    _outputs_of_an_earlier_run(tmp_path)
    check_database_present("sqlite://", tmp_path / "outputs")
    check_database_present("postgresql+psycopg://u@127.0.0.1/x", tmp_path / "outputs")
    with pytest.raises(DatabaseMissingError):
        check_database_present(f"sqlite:///{tmp_path / 'gone.db'}", tmp_path / "outputs")
