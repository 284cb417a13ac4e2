"""Offline checks of the browser assets vendored by scripts/vendor_assets.py (no network): the
package's (static/vendor/) and the CDN copies the browser tests answer FastHTML's CDN with
(tests/apps/cdn/)."""

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
CDN_ROOT = REPO_ROOT / "tests" / "apps" / "cdn"
MANIFEST_PATH = VENDOR_ROOT / "manifest.json"
SCRIPT_PATH = REPO_ROOT / "scripts" / "vendor_assets.py"
ROOTS = (VENDOR_ROOT, CDN_ROOT)

LICENCE_NAMES = {"LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING"}


def _manifest(root: Path = VENDOR_ROOT) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return data


def _vendor_entries(root: Path = VENDOR_ROOT) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = _manifest(root)["vendor"]
    return entries


def _all_entries() -> list[tuple[Path, str, dict[str, Any]]]:
    return [(root, d, entry) for root in ROOTS for d, entry in sorted(_vendor_entries(root).items())]


def _manifest_files() -> list[tuple[Path, str, str, dict[str, Any]]]:
    return [
        (root, directory, name, info)
        for root, directory, entry in _all_entries()
        for name, info in sorted(entry["files"].items())
    ]


def _id(root: Path, *parts: str) -> str:
    return "/".join([root.relative_to(REPO_ROOT).as_posix(), *parts])


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_assets", SCRIPT_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("vendor_assets", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("root", ROOTS, ids=[_id(r) for r in ROOTS])
def test_manifest_is_canonical_json(root: Path) -> None:
    raw = (root / "manifest.json").read_text(encoding="utf-8")
    data = json.loads(raw)
    assert raw == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_package_and_the_cdn_copies_hold_what_they_should() -> None:
    assert set(_vendor_entries(VENDOR_ROOT)) == {"htmx-2", "htmx-ext-sse-2", "htmx-4"}
    assert set(_vendor_entries(CDN_ROOT)) == {"npm/htmx.org@4.0.0"}


@pytest.mark.parametrize(
    ("root", "directory", "name", "info"),
    _manifest_files(),
    ids=[_id(r, d, n) for r, d, n, _ in _manifest_files()],
)
def test_file_exists_and_sha256_matches(root: Path, directory: str, name: str, info: dict[str, Any]) -> None:
    path = root / directory / name
    assert path.is_file(), f"{path} named in manifest.json is missing"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert len(data) == info["size"]


@pytest.mark.parametrize(
    ("root", "directory", "entry"), _all_entries(), ids=[_id(r, d) for r, d, _ in _all_entries()]
)
def test_directory_has_licence_and_nothing_unlisted(
    root: Path, directory: str, entry: dict[str, Any]
) -> None:
    base = root / directory
    present = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}
    assert present & LICENCE_NAMES, f"{directory} has no licence file"
    assert entry["license_file"] in present
    assert entry["license"] == "0BSD"
    licence = (base / entry["license_file"]).read_text(encoding="utf-8")
    assert "Permission to use, copy, modify, and/or distribute this software" in licence
    assert present == set(entry["files"]), "vendored directory and manifest disagree"


def test_manifest_provenance_fields() -> None:
    for _, directory, entry in _all_entries():
        pkg, version = entry["package"], entry["version"]
        assert entry["tarball"] == (
            f"https://registry.npmjs.org/{pkg}/-/{pkg.split('/')[-1]}-{version}.tgz"
        ), directory
        assert entry["integrity"].startswith("sha512-"), directory


def test_manifest_matches_pinned_table_in_script() -> None:
    script = _load_script()
    pins = {(pin.root, pin.directory): pin for pin in script.PINS}
    entries = {(root, directory): entry for root, directory, entry in _all_entries()}
    assert set(pins) == set(entries)
    for key, pin in pins.items():
        entry = entries[key]
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


def test_the_cdn_copies_are_what_fasthtmls_htmx4_headers_load() -> None:
    """``fast_app(htmx4=True, exts="sse4")``: the URLs the browser tests answer from tests/apps/cdn/.
    A FastHTML that loads other versions needs new copies (a pin in scripts/vendor_assets.py)."""
    core = pytest.importorskip("fasthtml.core")
    cdn = "https://cdn.jsdelivr.net/"
    for url in (core.htmx4src.attrs["src"], core.htmx_exts["sse4"]):
        assert url.startswith(cdn), url
        assert (CDN_ROOT / url.removeprefix(cdn)).is_file(), f"no copy of {url} in tests/apps/cdn/"


def test_cdn_copy_versions() -> None:
    text = (CDN_ROOT / "npm/htmx.org@4.0.0/dist/htmx.min.js").read_text(encoding="utf-8")
    assert 'this.version="4.0.0"' in text
    assert 'registerExtension("sse"' in (CDN_ROOT / "npm/htmx.org@4.0.0/dist/ext/hx-sse.min.js").read_text()
