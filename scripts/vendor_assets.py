#!/usr/bin/env python3
"""Vendor pinned browser assets (htmx and its SSE extensions) from the npm registry.

Usage:
    python3 scripts/vendor_assets.py           # download, verify, write files + manifests
    python3 scripts/vendor_assets.py --check   # download, verify, compare; write nothing

For every pinned package the script fetches the registry metadata
(``https://registry.npmjs.org/<name>/<version>``), downloads the tarball, verifies the
``dist.integrity`` Subresource Integrity hash (sha512) *before* opening the archive, and
copies only the chosen members into ``src/graceful_sse/static/vendor/<dir>/``.  It then
writes ``src/graceful_sse/static/vendor/manifest.json`` (sorted keys, trailing newline, no
timestamps), so two runs give byte-for-byte identical files.

The same goes for ``tests/apps/cdn/``: what FastHTML's default headers load from the jsdelivr CDN
(``fast_app(htmx4=True, exts="sse4")``: htmx.org 4.0.0), laid out as the CDN's paths, so that the
browser tests answer the CDN with the very files it serves (this machine cannot reach it). These
are test fixtures, not shipped in the package.

Standard library only (Python 3.11+).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY = "https://registry.npmjs.org"
REPO_ROOT = Path(__file__).resolve().parent.parent
VENDOR_ROOT = REPO_ROOT / "src" / "graceful_sse" / "static" / "vendor"
CDN_ROOT = REPO_ROOT / "tests" / "apps" / "cdn"
MANIFEST_NAME = "manifest.json"
USER_AGENT = "graceful-sse-vendor-assets/1 (+python urllib)"

# package.json "license" values seen in the pinned packages -> SPDX identifier.
# htmx.org 4.x declares "BSD-0-Clause", which is not an SPDX id; SPDX calls it "0BSD".
SPDX_ALIASES = {"0BSD": "0BSD", "BSD-0-Clause": "0BSD"}


@dataclass(frozen=True)
class Pin:
    directory: str  # sub-directory of VENDOR_ROOT
    package: str  # npm package name
    version: str  # exact npm version
    integrity: str | None  # expected dist.integrity (sha512 SRI); None = trust registry, print it
    files: dict[str, str]  # vendored file name -> member path inside the tarball
    license: str  # expected SPDX identifier
    license_file: str  # vendored file name (key of `files`) holding the licence text
    # Only for packages whose package.json has no "license" field: a string that must
    # appear in the licence file, so the identifier above is checked against the text.
    license_text_marker: str | None = None
    root: Path = VENDOR_ROOT  # the tree (with its own manifest) the directory is in


PINS: tuple[Pin, ...] = (
    Pin(
        directory="htmx-2",
        package="htmx.org",
        version="2.0.11",
        integrity=(
            "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA=="
        ),
        files={"htmx.min.js": "package/dist/htmx.min.js", "LICENSE": "package/LICENSE"},
        license="0BSD",
        license_file="LICENSE",
    ),
    Pin(
        directory="htmx-ext-sse-2",
        package="htmx-ext-sse",
        version="2.2.4",
        integrity=(
            "sha512-LJmxVhykyflBWgh5PvbRidcyuqMHlgfajmmzumvKctv9puvsufeH6OaejSMZTNTnEI8O2wXXn4ZZtBdpEMqmEQ=="
        ),
        # package/sse.js and package/dist/sse.js are identical in this tarball; dist/sse.js
        # is the plain (unminified, non-ESM) browser build.
        files={"sse.js": "package/dist/sse.js", "LICENSE": "package/LICENSE"},
        license="0BSD",
        license_file="LICENSE",
        license_text_marker="BSD Zero Clause License",
    ),
    Pin(
        directory="htmx-4",
        package="htmx.org",
        version="4.0.1",
        integrity=(
            "sha512-oF7JgXhDW9UXCy/k1ZYFUQgzu/rm19ORWPSPNL91vPluB2PB9+MV55tyQdH/w7o2EAbTYUG5SDW1R60mdkdqGg=="
        ),
        files={
            "htmx.min.js": "package/dist/htmx.min.js",
            # htmx 4 ships its SSE extension inside htmx.org (unminified build).
            "hx-sse.js": "package/dist/ext/hx-sse.js",
            "LICENSE": "package/LICENSE",
        },
        license="0BSD",
        license_file="LICENSE",
    ),
    # What fasthtml.core.htmx4src and htmx_exts["sse4"] load (python-fasthtml 0.14.14), at the
    # CDN's paths (https://cdn.jsdelivr.net/npm/htmx.org@4.0.0/dist/...).
    Pin(
        directory="npm/htmx.org@4.0.0",
        package="htmx.org",
        version="4.0.0",
        integrity=(
            "sha512-T/171FUY93Kdfp8t+DnHdk45QvKRiBhVhhrwSzrXgUi4pHKvhp77dUA/qg8FAjsFWPIHNbmUuIdCrcVHuiZWng=="
        ),
        files={
            "dist/htmx.min.js": "package/dist/htmx.min.js",
            "dist/ext/hx-sse.min.js": "package/dist/ext/hx-sse.min.js",
            "LICENSE": "package/LICENSE",
        },
        license="0BSD",
        license_file="LICENSE",
        root=CDN_ROOT,
    ),
)
ROOTS = (VENDOR_ROOT, CDN_ROOT)


class VendorError(RuntimeError):
    pass


def _get(url: str, accept: str) -> bytes:
    """GET a URL with a few retries on transient network errors."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": accept})
    last: Exception | None = None
    for attempt in range(4):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise VendorError(f"GET {url}: HTTP {exc.code}") from exc
            last = exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = exc
        time.sleep(1.5 * (attempt + 1))
    raise VendorError(f"GET {url} failed: {last}")


def fetch_metadata(pin: Pin) -> dict[str, Any]:
    name = urllib.parse.quote(pin.package, safe="@")
    url = f"{REGISTRY}/{name}/{urllib.parse.quote(pin.version)}"
    meta = json.loads(_get(url, "application/json"))
    if meta.get("name") != pin.package or meta.get("version") != pin.version:
        raise VendorError(f"{url}: metadata is for {meta.get('name')}@{meta.get('version')}")
    return dict(meta)


def verify_integrity(data: bytes, integrity: str, what: str) -> None:
    """Check `data` against an SRI string; only sha512 entries are accepted."""
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    candidates = [
        token.split("?", 1)[0][len("sha512-") :] for token in integrity.split() if token.startswith("sha512-")
    ]
    if not candidates:
        raise VendorError(f"{what}: no sha512 entry in integrity {integrity!r}")
    if digest not in candidates:
        raise VendorError(f"{what}: integrity mismatch: got sha512-{digest}, want {integrity}")


def read_members(tarball: bytes, members: list[str], what: str) -> dict[str, bytes]:
    """Read the named regular-file members from a (verified) .tgz without extracting it."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for name in members:
            try:
                info = tar.getmember(name)
            except KeyError as exc:
                raise VendorError(f"{what}: {name} is not in the tarball") from exc
            if not info.isfile():
                raise VendorError(f"{what}: {name} is not a regular file")
            handle = tar.extractfile(info)
            if handle is None:
                raise VendorError(f"{what}: cannot read {name}")
            out[name] = handle.read()
    return out


def build(pin: Pin) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Download and verify one pin; return (file name -> bytes, manifest entry)."""
    what = f"{pin.package}@{pin.version}"
    meta = fetch_metadata(pin)
    dist = meta.get("dist") or {}
    integrity = dist.get("integrity")
    tarball_url = dist.get("tarball")
    if not isinstance(integrity, str) or not isinstance(tarball_url, str):
        raise VendorError(f"{what}: registry metadata has no dist.integrity / dist.tarball")
    if pin.integrity is None:
        print(f"  NOTE {what}: no pinned integrity; registry says {integrity}", file=sys.stderr)
    elif integrity != pin.integrity:
        raise VendorError(f"{what}: registry integrity {integrity} != pinned {pin.integrity}")
    if not tarball_url.startswith(REGISTRY + "/"):
        raise VendorError(f"{what}: unexpected tarball host in {tarball_url}")

    tarball = _get(tarball_url, "application/octet-stream")
    verify_integrity(tarball, integrity, what)  # before anything is read from the archive

    wanted = sorted(set(pin.files.values()) | {"package/package.json"})
    members = read_members(tarball, wanted, what)
    package_json = json.loads(members["package/package.json"])
    if package_json.get("name") != pin.package or package_json.get("version") != pin.version:
        raise VendorError(f"{what}: tarball package.json names another package/version")

    declared = package_json.get("license")
    if declared is not None:
        if SPDX_ALIASES.get(str(declared)) != pin.license:
            raise VendorError(f"{what}: package.json license {declared!r} != {pin.license}")
        license_source = "package.json license field"
    else:
        licence_text = members[pin.files[pin.license_file]].decode("utf-8")
        if not pin.license_text_marker or pin.license_text_marker not in licence_text:
            raise VendorError(f"{what}: no license field and licence text not recognised")
        license_source = (
            f"package.json has no license field; identified from the tarball's "
            f"{pin.files[pin.license_file]} ({pin.license_text_marker!r})"
        )

    files = {name: members[member] for name, member in pin.files.items()}
    entry: dict[str, Any] = {
        "package": pin.package,
        "version": pin.version,
        "tarball": tarball_url,
        "integrity": integrity,
        "license": pin.license,
        "license_declared": declared,
        "license_source": license_source,
        "license_file": pin.license_file,
        "files": {
            name: {
                "source": pin.files[name],
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
            for name, data in files.items()
        },
    }
    return files, entry


def render_manifest(entries: dict[str, dict[str, Any]]) -> bytes:
    manifest = {
        "comment": "Generated by scripts/vendor_assets.py; do not edit by hand.",
        "registry": REGISTRY,
        "vendor": entries,
    }
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def desired_state() -> dict[Path, bytes]:
    """Everything the vendor trees should contain, keyed by absolute path."""
    state: dict[Path, bytes] = {}
    entries: dict[Path, dict[str, dict[str, Any]]] = {root: {} for root in ROOTS}
    for pin in PINS:
        print(f"fetching {pin.package}@{pin.version} -> {rel(pin.root / pin.directory)}/", file=sys.stderr)
        files, entry = build(pin)
        entries[pin.root][pin.directory] = entry
        for name, data in files.items():
            state[pin.root / pin.directory / name] = data
    for root, root_entries in entries.items():
        state[root / MANIFEST_NAME] = render_manifest(root_entries)
    return state


def stray_files() -> list[Path]:
    """Files inside the managed vendor directories that no pin accounts for."""
    wanted = {pin.root / pin.directory / name for pin in PINS for name in pin.files}
    stray: list[Path] = []
    for pin in PINS:
        directory = pin.root / pin.directory
        if directory.is_dir():
            stray.extend(p for p in sorted(directory.rglob("*")) if p.is_file() and p not in wanted)
    return stray


def rel(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def check(state: dict[Path, bytes]) -> int:
    problems: list[str] = []
    for path, data in sorted(state.items()):
        if not path.is_file():
            problems.append(f"missing: {rel(path)}")
        elif path.read_bytes() != data:
            problems.append(f"differs: {rel(path)}")
    problems.extend(f"unexpected: {rel(path)}" for path in stray_files())
    for line in problems:
        print(line)
    if problems:
        print("vendored assets are out of date: run python3 scripts/vendor_assets.py")
        return 1
    print(f"ok: {len(state)} files match")
    return 0


def write(state: dict[Path, bytes]) -> int:
    for path in stray_files():
        print(f"removing {rel(path)}")
        path.unlink()
    for path, data in sorted(state.items()):
        if path.is_file() and path.read_bytes() == data:
            print(f"unchanged {rel(path)}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {rel(path)} ({len(data)} bytes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="re-download and compare with the files in the repo; write nothing (exit 1 on drift)",
    )
    args = parser.parse_args(argv)
    try:
        state = desired_state()
    except VendorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return check(state) if args.check else write(state)


if __name__ == "__main__":
    sys.exit(main())
