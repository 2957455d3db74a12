"""One version for the release: the VERSION file, the Python package and both binaries' --version
(which also print the protocol version this client speaks)."""

from __future__ import annotations

import pathlib
import re

from conftest import REPO, require_binary, run

import tokenfeed


def test_python_package_has_the_release_version():
    assert tokenfeed.__version__ == (REPO / "VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", tokenfeed.__version__)


def test_binaries_print_the_release_and_protocol_versions():
    for name in ("tokenfeed", "tokenfeedd"):
        out = run([require_binary(name), "--version"]).stdout.strip()
        assert out == f"{name} {tokenfeed.__version__} (protocol {tokenfeed.PROTOCOL_VERSION}, cursor 1)", out


def test_swift_constant_matches_the_version_file():
    source = (REPO / "Sources" / "Protocol" / "Release" / "ReleaseVersion.swift").read_text()
    assert f'public static let string = "{tokenfeed.__version__}"' in source
    assert pathlib.Path(REPO / "CHANGELOG.md").read_text().count(f"## {tokenfeed.__version__}") == 1
