"""STAR files as text, in constant memory: find the loop tables, read some of their columns in chunks, and
copy a file while rewriting one column.

``starfile`` reads every column of every table into pandas, which for a million-particle STAR file costs about
a gigabyte (object columns of image and micrograph names). ``retrieve`` needs only the CTF, optics and image
columns while it works, and at the end writes the input file back with ``rlnImageName`` pointing at its output
stack. These functions do both line by line, so memory grows with the columns read (a few float columns per
particle), not with the file; everything else in the file is copied byte for byte.

The format handled is what RELION writes: ``data_NAME`` blocks, each either a ``loop_`` table (column lines
``_rlnName #k``, then one whitespace-separated row per line, ending at a blank line or the next block) or
``_rlnName value`` pairs. Values may be quoted with ``"`` or ``'``; ``#`` starts a comment line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cryophase.io.atomic import temporary_sibling

_TOKEN = re.compile(r'"[^"]*"|\'[^\']*\'|\S+')


@dataclass
class LoopTable:
    """Where one ``loop_`` table of a STAR file is.

    Attributes
    ----------
    block : the data block's name (``particles`` for ``data_particles``; ``""`` for a bare ``data_``).
    columns : column names without the leading underscore, in file order.
    first_row_line : 0-based line number of the first row.
    n_rows : number of rows.
    last_column_line : 0-based line number of the last column line.
    """

    block: str
    columns: list[str]
    first_row_line: int
    n_rows: int
    last_column_line: int = -1


def _is_row(stripped: str) -> bool:
    return bool(stripped) and not stripped.startswith(("#", "_", "data_", "loop_"))


def scan_loop_tables(path: str | Path) -> list[LoopTable]:
    """Every ``loop_`` table of a STAR file, in file order, found in one pass over its lines."""
    tables: list[LoopTable] = []
    block, current, state = "", None, "outside"  # state: outside | header | rows
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh):
            stripped = line.strip()
            if stripped.startswith("data_"):
                block, state = stripped[5:], "outside"
            elif stripped.startswith("loop_"):
                current = LoopTable(block, [], -1, 0, number)
                tables.append(current)
                state = "header"
            elif state == "header" and stripped.startswith("_"):
                current.columns.append(stripped.split()[0][1:])
                current.last_column_line = number
            elif state in ("header", "rows") and _is_row(stripped):
                if state == "header":
                    current.first_row_line, state = number, "rows"
                current.n_rows += 1
            elif state == "rows" and not stripped:
                state = "outside"
            elif state == "header" and stripped and not stripped.startswith("#"):
                state = "outside"
    return tables


def read_loop_columns(path: str | Path, table: LoopTable, columns: Collection[str] | None = None, *,
                      chunk_rows: int = 100_000,
                      convert: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
    """Read some columns of a loop table in chunks of ``chunk_rows`` rows.

    Parameters
    ----------
    path : the STAR file.
    table : the table, from :func:`scan_loop_tables`.
    columns : the columns to keep (those absent from the table are ignored); ``None`` keeps all.
    convert : applied to each chunk before the chunks are joined (e.g. to turn strings into codes), so that
        only the converted form of each chunk is held.

    Returns
    -------
    DataFrame with ``table.n_rows`` rows; numeric columns are parsed as numbers, other columns are strings.
    """
    keep = list(table.columns) if columns is None else [c for c in table.columns if c in set(columns)]
    if table.n_rows == 0 or not keep:
        return pd.DataFrame({c: [] for c in keep})
    reader = pd.read_csv(path, sep=r"\s+", header=None, names=table.columns, usecols=keep,
                         skiprows=table.first_row_line, nrows=table.n_rows, chunksize=chunk_rows, quotechar='"',
                         comment="#", skip_blank_lines=True, engine="c", keep_default_na=False,
                         na_values=["nan", "NaN"], low_memory=True)
    chunks = [convert(chunk) if convert is not None else chunk for chunk in reader]
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0].reset_index(drop=True)
    if len(frame) != table.n_rows:
        raise ValueError(f"{path}: read {len(frame)} rows of data_{table.block}, expected {table.n_rows}")
    return frame


def _replace_token(line: str, index: int, value: str) -> str:
    for k, match in enumerate(_TOKEN.finditer(line)):
        if k == index:
            return line[:match.start()] + value + line[match.end():]
    raise ValueError(f"row has fewer than {index + 1} values: {line.strip()!r}")


def rewrite_loop_column(source: str | Path, destination: str | Path, table: LoopTable, column: str,
                        values: Iterator[str], *, set_columns: dict[str, dict[str, str]] | None = None) -> None:
    """Copy ``source`` to ``destination`` (atomically), replacing ``column`` of ``table`` row by row.

    Parameters
    ----------
    source, destination : STAR files (``destination`` is written through a temporary sibling and renamed).
    table : the table whose column is replaced.
    column : its name, e.g. ``rlnImageName``.
    values : one string per row, consumed in order.
    set_columns : ``{block: {column: value}}``: give every row of that block's loop table this value, replacing
        the column or appending it as a new last column (e.g. an overridden pixel size).

    Every other byte is copied unchanged.
    """
    set_columns = dict(set_columns or {})
    tables = scan_loop_tables(source)
    edits: dict[int, tuple[LoopTable, dict[int, str], dict[str, str], bool]] = {}
    for t in tables:
        replace: dict[int, str] = {}
        appended: dict[str, str] = {}
        for name, value in set_columns.get(t.block, {}).items():
            if name in t.columns:
                replace[t.columns.index(name)] = value
            else:
                appended[name] = value
        is_target = t.block == table.block and t.first_row_line == table.first_row_line
        if is_target:
            if column not in t.columns:
                raise ValueError(f"{source}: data_{t.block} has no {column} column")
            if t.n_rows != table.n_rows:
                raise ValueError(f"{source}: data_{t.block} changed since it was read")
        if (replace or appended or is_target) and t.n_rows > 0:
            edits[t.first_row_line] = (t, replace, appended, is_target)
    # New columns are announced after the table's last column line.
    header_ends = {t.last_column_line: (t, appended) for t, _, appended, _ in edits.values() if appended}
    destination = Path(destination)
    tmp = temporary_sibling(destination)
    try:
        with open(source, encoding="utf-8", errors="replace") as src, open(tmp, "w", encoding="utf-8") as dst:
            active, rows_left = None, 0
            for number, line in enumerate(src):
                if number in edits:
                    active = edits[number]
                    rows_left = active[0].n_rows
                if active is not None and _is_row(line.strip()):
                    t, replace, appended, is_target = active
                    for index, value in replace.items():
                        line = _replace_token(line, index, value)
                    if is_target:
                        line = _replace_token(line, t.columns.index(column), next(values))
                    if appended:
                        body = line.rstrip("\r\n")
                        line = body + "".join(f" {v}" for v in appended.values()) + line[len(body):]
                    rows_left -= 1
                    if rows_left == 0:
                        active = None
                dst.write(line)
                if number in header_ends:
                    t, appended = header_ends[number]
                    if not line.endswith("\n"):
                        dst.write("\n")
                    for k, name in enumerate(appended, start=len(t.columns) + 1):
                        dst.write(f"_{name} #{k}\n")
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
