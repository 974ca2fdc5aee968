"""MkDocs hook: docs/results.md shows the results pages the benchmarks write, as they are.

A marker `<!-- results: benchmarks/results/cpu.md -->` (a path from the repository root) is
replaced by that file's text, or, before any run has written it, by the command that does.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!-- results: (\S+) -->")


def include(match: re.Match) -> str:
    path = ROOT / match.group(1)
    if path.is_file():
        return path.read_text()
    return f"No results yet: `{match.group(1)}` is written by the command above."


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(include, markdown)
