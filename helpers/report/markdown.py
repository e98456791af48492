"""Markdown pieces the report is written with: tables, figures, and images inlined for a notebook."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def _table(frame: pd.DataFrame) -> str:
    """A markdown table without extra dependencies (pandas' to_markdown needs `tabulate`)."""
    columns = list(frame.columns)
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _figure(path: Path, report_dir: Path, caption: str) -> str:
    return f"![{caption}]({os.path.relpath(path, report_dir)})\n\n*{caption}*\n"


def inline_images(text: str, report_dir: str | os.PathLike) -> str:
    """The report's markdown with its images embedded (data URIs), for display inside a notebook."""
    import base64
    import re

    def embed(match):
        path = Path(report_dir) / match.group(2)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    return re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", embed, text)
