"""Input-derived text on the terminal: never markup, never control sequences.

Venues, symbols, trade ids, payloads, keys and file names come from input. Printed as is,
``[red]...[/red]`` or ``[link=...]`` would be Rich markup and an ESC byte would be a
terminal control sequence (colour changes, cursor moves, title or clipboard writes).
Everything the commands print that did not come from the program itself goes through
one of these:

* :func:`printable` - control and bidirectional-override characters as ``\\uXXXX``
  (valid inside JSON strings too, so JSON output stays JSON);
* :func:`cell` - a Rich table cell (a ``Text``: never parsed as markup);
* :func:`markup_safe` - for embedding in a string that does contain program markup;
* :func:`add_row` - a table row of cells.
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.table import Table
from rich.text import Text

# C0 controls except tab and newline, DEL, C1 controls, line/paragraph separators and the
# bidirectional overrides/isolates (text that reads differently from what it is).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(value: object, *, lines: bool = False) -> str:
    """``str(value)`` with control characters escaped (``lines``: keep newlines)."""
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE if lines else _UNSAFE_LINES).sub(_escape, text)


def cell(value: object) -> Text:
    """A table cell showing ``value`` literally."""
    return Text(printable(value))


def markup_safe(value: object) -> str:
    """``value`` for an f-string printed with Rich markup on."""
    return escape(printable(value))


def add_row(table: Table, *values: object, style: str | None = None) -> None:
    """A row whose every value is shown literally."""
    table.add_row(*(cell(v) for v in values), style=style)
