"""Reading an import file (CSV or XLSX) into rows of text, with the line each row has in the file.

One reader for every all-or-nothing import (customers, business figures): pandas reads the file with every cell
as text (``dtype=str``, so ``0571`` keeps its zero and a phone never becomes a float), the header is checked
against the columns the import knows, and each row keeps the line a person sees in a spreadsheet (the header is
line 1). Rows are then checked by the import itself, which lists every bad row (``RowProblem``) or adds them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kefu.models.directory import DirectoryError

Row = dict[str, str]


def read_table(path: Path, columns: Sequence[str], required: Sequence[str]) -> list[tuple[int, Row]]:
    """The non-empty rows of ``path`` as ``(line, {column: text})``; refuses unknown or missing columns, an empty
    file, or a file that is not UTF-8 CSV / XLSX, before any row is read (``DirectoryError``)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skip_blank_lines=False)
        elif suffix == ".xlsx":
            frame = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        else:
            raise DirectoryError(f"{path.name}: give a .csv or .xlsx file")
    except UnicodeDecodeError as exc:
        raise DirectoryError(f"{path.name} is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DirectoryError(f"{path.name} is empty: a header row ({', '.join(columns)}) then one row each") from None
    except (pd.errors.ParserError, ValueError, OSError, KeyError) as exc:
        raise DirectoryError(f"{path.name} cannot be read as {suffix[1:].upper()}: {exc}") from None
    header = [str(c).strip().lower() for c in frame.columns]
    unknown = [c for c in header if c and not c.startswith("unnamed:") and c not in columns]
    missing = [c for c in required if c not in header]
    if unknown or missing:
        raise DirectoryError(
            f"{path.name} line 1: "
            + "; ".join(
                ([f"unknown column(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing column(s) {', '.join(missing)}"] if missing else [])
            )
            + f" (columns: {', '.join(columns)})"
        )
    frame.columns = header
    frame = frame[[c for c in header if c in columns]].fillna("").astype(str)
    rows: list[tuple[int, Row]] = []
    for index, record in enumerate(frame.to_dict(orient="records")):
        row = {str(k): str(v).strip() for k, v in record.items()}
        if any(row.values()):
            rows.append((index + 2, row))  # line 1 is the header
    if not rows:
        raise DirectoryError(f"{path.name} has a header but no rows")
    return rows
