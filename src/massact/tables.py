"""Result tables as files: CSV (every digit), Markdown (for reading in a terminal or on a
code host) and a self-contained HTML page (the report shows it inline). Pandas only."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .io import write_text

CSS = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 12px; color: #222; }
caption { caption-side: top; text-align: left; font-weight: 600; font-size: 15px;
          padding-bottom: 6px; }
table { border-collapse: collapse; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { position: sticky; top: 0; background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
p.note { max-width: 70em; color: #444; }
""".strip()


#: p-values and their floors are shown with two significant digits (3.1e-05), whatever
#: the table's format for other numbers
P_FORMAT = "{:.2g}"


def is_p_column(name) -> bool:
    """A p-value or p-value floor column (``p_vs_random``, ``ppl_p``, ``layer_p_floor``…)."""
    name = str(name)
    return name.startswith("p_") or "_p_" in name or name.endswith("_p")


def _cell(v, fmt: str, missing: str = "") -> str:
    if v is None or v is pd.NA:
        return missing
    if isinstance(v, (float, np.floating)):
        return missing if np.isnan(v) else fmt.format(v)
    return str(v)


def _formats(df: pd.DataFrame, floatfmt: str) -> list[str]:
    return [P_FORMAT if is_p_column(c) else floatfmt for c in df.columns]


def to_markdown(df: pd.DataFrame, floatfmt: str = "{:,.2f}") -> str:
    """A GitHub-flavoured Markdown table (no optional dependency); p-value columns with
    two significant digits, missing values as ``–``."""
    fmts = _formats(df, floatfmt)

    def fmt(v, f):
        return _cell(v, f, "–").replace("|", "\\|").replace("\n", "\\n")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v, f) for v, f in zip(r, fmts)) + " |"
            for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows]) + "\n"


def to_html(df: pd.DataFrame, title: str, note: str = "", floatfmt: str = "{:,.2f}") -> str:
    """A self-contained HTML page: the table with ``title`` as its caption, ``note`` under
    it; numbers right-aligned (p-values with two significant digits), empty cells for
    missing values."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    fmts = _formats(df, floatfmt)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for r in df.itertuples(index=False):
        cells = "".join(
            f'<td class="num">{html.escape(_cell(v, f))}</td>' if num
            else f"<td>{html.escape(_cell(v, f))}</td>" for v, num, f in zip(r, numeric, fmts))
        rows.append(f"<tr>{cells}</tr>")
    body = "\n".join(rows)
    para = f'<p class="note">{html.escape(note.strip())}</p>\n' if note.strip() else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n"
            f"<table>\n<caption>{html.escape(title)}</caption>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}\n</tbody>\n</table>\n{para}</body>\n</html>\n")


def write_table(df: pd.DataFrame, *, csv=None, md=None, html_path=None, shown=None,
                title: str = "", note: str = "", floatfmt: str = "{:,.2f}") -> None:
    """Write ``df`` as CSV (all digits, ``%.6g``) and ``shown`` (default ``df``; e.g. the
    changes in %) as Markdown and HTML, the note under both."""
    shown = df if shown is None else shown
    if csv is not None:
        write_text(df.to_csv(index=False, float_format="%.6g"), csv)
    if md is not None:
        write_text(to_markdown(shown, floatfmt=floatfmt) + (f"\n{note.strip()}\n" if note.strip() else ""), md)
    if html_path is not None:
        write_text(to_html(shown, title, note, floatfmt), html_path)
