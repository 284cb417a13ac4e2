"""The documentation site's pages made from the repository's own Markdown: one source per text.

The README is cut at its ``##`` headings into pages (and the ``### `` guides under ``## Guides``
into a page each); ``benchmarks/README.md`` becomes a page too. Their links are written for the
repository (``docs/screenshots/…``, ``tests/…``, ``#the-hub``), so each link is mapped to where its
target is on the site: another page, an image copied along, or, for source files that are not on
the site, plain text (the site has no repository browser to link to).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).parent.parent
GUIDES = "Guides"
# Repository Markdown outside docs/ shown on the site as a page (the README is cut into pages below).
MOUNTED = {"benchmarks/README.md": "benchmark-results.md"}
LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) (.+)$")


@dataclass
class Page:
    path: str  # on the site, e.g. "guides/the-hub.md"
    source: str  # the repository file it comes from
    lines: list[str] = field(default_factory=list)
    shift: int = 0  # heading levels removed, so that the page's own heading is an h1


def slug(title: str) -> str:
    """GitHub's anchor for a heading, so that the README's own ``#links`` find their section."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line, level, title) of every heading outside code blocks."""
    found, fenced = [], False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            found.append((number, len(match.group(1)), match.group(2)))
    return found


def readme_pages(lines: list[str]) -> list[Page]:
    """The README cut into pages: its top as the home page, then a page per section."""
    pages = [Page("index.md", "README.md")]
    in_guides = False
    marks = {number: (level, title) for number, level, title in headings(lines)}
    for number, line in enumerate(lines):
        level, title = marks.get(number, (0, ""))
        if level == 2:
            in_guides = title == GUIDES
            path = "guides/index.md" if in_guides else f"{slug(title)}.md"
            pages.append(Page(path, "README.md", shift=1))
        elif level == 3 and in_guides:
            pages.append(Page(f"guides/{slug(title)}.md", "README.md", shift=2))
        pages[-1].lines.append(line)
    return pages


def anchors(pages: list[Page]) -> dict[str, str]:
    """Each README heading's anchor -> the page that holds it."""
    return {slug(title): page.path for page in pages for _, _, title in headings(page.lines)}


def shifted(page: Page) -> list[str]:
    marks = {number for number, _, _ in headings(page.lines)}
    return [line[page.shift :] if n in marks else line for n, line in enumerate(page.lines)]


class Links:
    """Maps a link written for the repository to one that works on the site."""

    def __init__(self, pages: list[Page], docs_dir: Path) -> None:
        self.anchor_pages = anchors(pages)
        self.tops = {slug(headings(page.lines)[0][2]) for page in pages if headings(page.lines)}
        self.docs_dir = docs_dir
        self.images: set[str] = set()  # repository files to copy to the site, at the same path

    def rewrite(self, page: Page, text: str) -> str:
        return LINK.sub(lambda match: self._link(page, match), text)

    def _link(self, page: Page, match: re.Match[str]) -> str:
        bang, label, target = match.groups()
        if "://" in target or target.startswith("mailto:"):
            return match.group(0)
        site = self._site_target(page, target)
        if site is None:
            return label
        return f"{bang}[{label}]({posixpath.relpath(site, posixpath.dirname(page.path) or '.')})"

    def _site_target(self, page: Page, target: str) -> str | None:
        path, _, anchor = target.partition("#")
        if not path:  # a section of the README, now perhaps on another page (or that page itself)
            target = self.anchor_pages.get(anchor, page.path)
            return target if anchor in self.tops else f"{target}#{anchor}"
        repo = posixpath.normpath(posixpath.join(posixpath.dirname(page.source), path))
        suffix = f"#{anchor}" if anchor else ""
        if repo == "README.md":
            return f"{self.anchor_pages.get(anchor, 'index.md')}{suffix}"
        if repo in MOUNTED:
            return MOUNTED[repo] + suffix
        if repo.startswith("docs/") and (self.docs_dir / repo[5:]).is_file():
            return repo[5:] + suffix
        if repo.endswith((".png", ".svg")) and (ROOT / repo).is_file():
            self.images.add(repo)
            return repo
        return None


def on_files(files: Files, config: MkDocsConfig) -> Files:
    docs_dir = Path(config.docs_dir)
    pages = readme_pages((ROOT / "README.md").read_text().splitlines())
    links = Links(pages, docs_dir)
    pages += [
        Page(path, source, (ROOT / source).read_text().splitlines()) for source, path in MOUNTED.items()
    ]
    for page in pages:
        text = links.rewrite(page, "\n".join(shifted(page)) + "\n")
        files.append(File.generated(config, page.path, content=text))
    for image in sorted(links.images):
        files.append(File.generated(config, image, content=(ROOT / image).read_bytes()))
    return files
