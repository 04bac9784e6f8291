"""What an installed flask_baton says about itself."""

from __future__ import annotations

from importlib import metadata

import flask_baton


def test_version_attribute_is_the_installed_distributions_version() -> None:
    assert flask_baton.__version__ == metadata.version("flask-baton")


def test_distribution_declares_the_spdx_license_and_ships_its_file() -> None:
    meta = metadata.metadata("flask-baton")
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])
