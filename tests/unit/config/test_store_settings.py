"""The ``store`` section: the JSON journal by default, PostgreSQL by URL (file or environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cname_flow.config import load_settings
from cname_flow.errors import ConfigError


def test_the_json_journal_is_the_default() -> None:
    assert load_settings(None, env={}).store.url is None


def test_a_postgresql_url_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store:\n  url: postgresql://cname@db.internal:5432/cf\n", encoding="utf-8")
    settings = load_settings(path, env={})
    assert settings.store.url == "postgresql://cname@db.internal:5432/cf"


def test_cname_flow_store_url_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store:\n  url: postgresql://a@h/x\n", encoding="utf-8")
    settings = load_settings(path, env={"CNAME_FLOW_STORE_URL": "postgres://b@h2/y"})
    assert settings.store.url == "postgres://b@h2/y"
    assert settings.where("store", "url") == "env CNAME_FLOW_STORE_URL"


def test_a_url_of_another_scheme_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store:\n  url: mysql://u:SENTINEL-PW@h/x\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "store.url" in str(caught.value) and "postgresql://" in str(caught.value)
    assert "SENTINEL-PW" not in str(caught.value)
