"""The manual is the project's own: no user-facing file cites `../shared` (a folder only this
checkout's CI has), and every `docs/...` page the code cites exists, with the section it names."""

import re
from pathlib import Path

from helpers.paths import ROOT

# Files a user reads: the package (code, docstrings, configs), the docs, the README, the site.
USER_FACING = ["src", "docs", "README.md", "mkdocs.yml"]
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".ipynb", ".txt", ".cfg", ".toml"}
# `docs/geometry.md`, or the bare `geometry.md` / `orl.md` the docstrings also use; then maybe a
# section in quotes: `docs/orl.md`` ("Known confound")`, `(geometry.md, "Optimal geometries")`,
# `docs/orl.md "Orbit diagnostics"`. A colon introduces a quotation, not a section.
REFERENCE = re.compile(
    r"(?:(?<![\w/.])docs/(?P<path>[\w./-]+?\.md)|(?<![\w/.])(?P<bare>geometry|orl)\.md)"
    r"(?:`*(?:,\s*|\s*\(\s*|\s+)\"(?P<section>[^\"]+)\")?"
)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def user_files():
    for entry in USER_FACING:
        path = ROOT / entry
        if path.is_file():
            yield path
        else:
            yield from (p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)


def references() -> list[tuple[str, str, str | None]]:
    """(where, page under docs/, section or None) for every docs reference in src/."""
    found = []
    for path in (ROOT / "src").rglob("*"):
        if not path.is_file() or path.suffix not in {".py", ".yaml"}:
            continue
        text = path.read_text()
        for match in REFERENCE.finditer(text):
            page = match["path"] or f"{match['bare']}.md"
            line = text.count("\n", 0, match.start()) + 1
            section = " ".join(match["section"].split()) if match["section"] else None
            found.append((f"{path.relative_to(ROOT)}:{line}", page, section))
    return found


def headings(page: Path) -> set[str]:
    return {h.strip("`").lower() for h in HEADING.findall(page.read_text())}


def test_no_user_facing_file_names_shared():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in user_files()
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if "../shared" in line
    ]
    assert not offenders, f"../shared is no part of an installed orbitcl: {offenders}"


def test_every_docs_reference_in_the_code_resolves():
    found = references()
    assert len(found) >= 20, found  # the docstrings cite the docs: the pattern still finds them
    assert any(section for _, _, section in found)
    broken = []
    for where, page, section in found:
        path = ROOT / "docs" / page
        if not path.is_file():
            broken.append(f"{where}: docs/{page} does not exist")
        elif section and section.lower() not in headings(path):
            broken.append(f'{where}: docs/{page} has no section "{section}"')
    assert not broken, "\n".join(broken)


def test_a_missing_page_or_section_is_caught(tmp_path):
    """The pattern reads both forms the code uses; a wrong name would not pass."""
    text = 'see ``docs/orl.md`` ("Known confound") and (geometry.md, "No such\n    section")'
    matches = [(m["path"] or m["bare"], m["section"]) for m in REFERENCE.finditer(text)]
    assert matches == [("orl.md", "Known confound"), ("geometry", "No such\n    section")]
    assert "no such section" not in headings(ROOT / "docs" / "geometry.md")
