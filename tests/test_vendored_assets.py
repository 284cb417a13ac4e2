"""Offline checks of the browser assets vendored by scripts/vendor_assets.py (no network)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VENDOR_ROOT = REPO_ROOT / "src" / "graceful_sse" / "static" / "vendor"
MANIFEST_PATH = VENDOR_ROOT / "manifest.json"
SCRIPT_PATH = REPO_ROOT / "scripts" / "vendor_assets.py"

LICENCE_NAMES = {"LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING"}


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    return data


def _vendor_entries() -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = _manifest()["vendor"]
    return entries


def _manifest_files() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (directory, name, info)
        for directory, entry in sorted(_vendor_entries().items())
        for name, info in sorted(entry["files"].items())
    ]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_assets", SCRIPT_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("vendor_assets", module)
    spec.loader.exec_module(module)
    return module


def test_manifest_is_canonical_json() -> None:
    raw = MANIFEST_PATH.read_text(encoding="utf-8")
    data = json.loads(raw)
    assert raw == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert set(_vendor_entries()) == {"htmx-2", "htmx-ext-sse-2", "htmx-4"}


@pytest.mark.parametrize(
    ("directory", "name", "info"),
    _manifest_files(),
    ids=[f"{d}/{n}" for d, n, _ in _manifest_files()],
)
def test_file_exists_and_sha256_matches(directory: str, name: str, info: dict[str, Any]) -> None:
    path = VENDOR_ROOT / directory / name
    assert path.is_file(), f"{path} named in manifest.json is missing"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert len(data) == info["size"]


@pytest.mark.parametrize("directory", sorted(_vendor_entries()))
def test_directory_has_licence_and_nothing_unlisted(directory: str) -> None:
    entry = _vendor_entries()[directory]
    present = {p.name for p in (VENDOR_ROOT / directory).iterdir() if p.is_file()}
    assert present & LICENCE_NAMES, f"{directory} has no licence file"
    assert entry["license_file"] in present
    assert entry["license"] == "0BSD"
    licence = (VENDOR_ROOT / directory / entry["license_file"]).read_text(encoding="utf-8")
    assert "Permission to use, copy, modify, and/or distribute this software" in licence
    assert present == set(entry["files"]), "vendored directory and manifest disagree"


def test_manifest_provenance_fields() -> None:
    for directory, entry in _vendor_entries().items():
        pkg, version = entry["package"], entry["version"]
        assert entry["tarball"] == (
            f"https://registry.npmjs.org/{pkg}/-/{pkg.split('/')[-1]}-{version}.tgz"
        ), directory
        assert entry["integrity"].startswith("sha512-"), directory


def test_manifest_matches_pinned_table_in_script() -> None:
    script = _load_script()
    pins = {pin.directory: pin for pin in script.PINS}
    entries = _vendor_entries()
    assert set(pins) == set(entries)
    for directory, pin in pins.items():
        entry = entries[directory]
        assert (entry["package"], entry["version"]) == (pin.package, pin.version)
        assert entry["integrity"] == pin.integrity
        assert entry["license"] == pin.license
        assert {n: i["source"] for n, i in entry["files"].items()} == pin.files


def test_htmx_2_version() -> None:
    text = (VENDOR_ROOT / "htmx-2" / "htmx.min.js").read_text(encoding="utf-8")
    assert 'version:"2.0.11"' in text


def test_htmx_4_version() -> None:
    text = (VENDOR_ROOT / "htmx-4" / "htmx.min.js").read_text(encoding="utf-8")
    assert 'this.version="4.0.1"' in text


def test_htmx_2_sse_extension_is_the_htmx_2_one() -> None:
    text = (VENDOR_ROOT / "htmx-ext-sse-2" / "sse.js").read_text(encoding="utf-8")
    assert "htmx.defineExtension('sse'" in text
    assert "sse-connect" in text and "sse-swap" in text
    assert "import " not in text.split("\n", 1)[0]  # plain browser build, not the ESM one


def test_htmx_4_sse_extension_is_registered_as_sse() -> None:
    text = (VENDOR_ROOT / "htmx-4" / "hx-sse.js").read_text(encoding="utf-8")
    assert "htmx.registerExtension('sse'" in text
    assert "hx-sse:connect" in text and "hx-sse:close" in text
