"""Small HTML tables for results shown in Jupyter (``_repr_html_``); no drawing here."""
from __future__ import annotations

import dataclasses
import html
from typing import Any, Dict

__all__ = ["dataclass_html", "table_html"]


def table_html(title: str, rows: Dict[str, Any]) -> str:
    """A two-column table (name, value) under a title; floats to 4 significant digits.

    Examples
    --------
    >>> table_html("Report", {"regions": 3, "error": 1.23456e-9, "ok": True})
    '<table><caption>Report</caption><tr><td>regions</td><td>3</td></tr><tr><td>error</td><td>1.235e-09</td></tr><tr><td>ok</td><td>True</td></tr></table>'
    """
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(v)}</td></tr>" for k, v in rows.items())
    return f"<table><caption>{html.escape(title)}</caption>{body}</table>"


def dataclass_html(obj) -> str:
    """:func:`table_html` of a dataclass's fields, titled by its class."""
    return table_html(type(obj).__name__, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
