"""Tables people bring along (predictions made elsewhere, groups of images for the Subgroups page): read as
spreadsheets write them, and matched to the data's images by id or path."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from .data import CSV_PATH_COLS, bom_encoding, separator

KEYS = ("id", *CSV_PATH_COLS)  # columns that name an image


class TableError(ValueError):
    """The table cannot be used; the message, starting with the table's name, says why."""


def read_table(source: str | Path | bytes, name: str | None = None) -> pd.DataFrame:
    """A CSV file (or its bytes, an upload: ``name`` then names it in messages) with every value as text and
    lower-case column names, rows that are all empty (a spreadsheet's trailing ones) left out. Comma-, semicolon- or
    tab-separated; UTF-8 (with or without a byte-order mark), UTF-16 or Windows-1252. attrs["decimal_comma"] where the
    separator leaves the comma to decimals."""
    name = name or str(source)
    if not isinstance(source, bytes):
        path = Path(source)
        if path.is_dir():
            raise TableError(f"{name}: a folder: give a CSV file")
        try:
            source = path.read_bytes()
        except FileNotFoundError:
            raise TableError(f"{name}: no such file") from None
        except OSError as e:
            raise TableError(f"{name}: cannot be read ({e})") from None
    bom, sep = bom_encoding(source), separator(source.split(b"\n", 1)[0])
    try:
        try:
            df = pd.read_csv(io.BytesIO(source), dtype=str, keep_default_na=False, sep=sep, encoding=bom or "utf-8")
        except UnicodeDecodeError:  # saved by a spreadsheet on Windows
            df = pd.read_csv(io.BytesIO(source), dtype=str, keep_default_na=False, sep=sep, encoding="cp1252")
    except UnicodeDecodeError as e:
        raise TableError(f"{name}: cannot be read ({e})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise TableError(f"{name}: not a CSV table ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(df.index, pd.RangeIndex):  # every row one value longer: pandas made the first values an index
        raise TableError(f"{name}: its rows have more values than the header: a value holding the separator {sep!r} "
                         "must be in double quotes, and no row may end with one")
    df.columns = [str(c).strip().lower() for c in df.columns]
    if (twice := df.columns[df.columns.duplicated()]).any():
        raise TableError(f"{name}: two columns are named {twice[0]!r} (names are read without case or spaces)")
    df = df[~df.apply(lambda c: c.str.strip() == "").all(axis=1)]
    if df.empty:
        raise TableError(f"{name}: no rows")
    df.attrs["decimal_comma"] = sep != ","
    return df


def rel_key(value: str) -> str:
    """A path as the data's relative paths are written: forward slashes (a Windows path's too), no leading ./"""
    value = value.strip().replace("\\", "/")
    return value[2:] if value.startswith("./") else value


def _rows_by(col: str, keys: pd.Series, ids: list[str], paths: list[str], root: Path | None) -> list[int]:
    """Each key's image index (-1 where none): ids as they are; paths relative to the data, absolute, ending in a
    path relative to the data (a copy elsewhere: D:/theirs/test/happy/1.png), or the file name alone where each names
    one image."""
    if col == "id":
        where = {str(i): k for k, i in enumerate(ids)}
        return [where.get(key, where.get(key.removesuffix(".0"), -1)) for key in keys]  # 14.0: a spreadsheet's 14
    where = {p: k for k, p in enumerate(paths)}
    if root is not None:
        base = root if root.is_dir() else root.parent  # a manifest's paths are relative to its folder
        where.update({(base / p).resolve().as_posix(): k for k, p in enumerate(paths)})
    names = pd.Series([Path(p).name for p in paths])
    by_name = {} if names.duplicated().any() else {n: k for k, n in enumerate(names)}

    def find(key: str) -> int:
        parts = key.split("/")
        return next((where[p] for p in ("/".join(parts[i:]) for i in range(len(parts))) if p in where),
                    by_name.get(parts[-1], -1))
    return [find(key) for key in keys]


def match_rows(df: pd.DataFrame, ids: list[str], paths: list[str], root: Path | None, name: str
               ) -> tuple[list[int], str]:
    """For each row of a read_table table, the index of its image among ``ids``/``paths`` (or -1), and the column(s)
    that matched. With an id and a path column both, they must agree where both name an image (an id that only counts
    rows would name others)."""
    cols = [c for c in KEYS if c in df][:2] if "id" in df else [next((c for c in KEYS if c in df), None)]
    if cols[0] is None:
        raise TableError(f"{name}: no column names the images: give an id or a path column ({', '.join(KEYS)}); its "
                         f"columns are {', '.join(df.columns)}")
    found = []
    for col in cols:
        keys = df[col].map(rel_key)
        if keys.duplicated().any():
            raise TableError(f"{name}: {col} {keys[keys.duplicated()].iloc[0]!r} is on two rows: a row per image "
                             "(one face each)")
        found.append(_rows_by(col, keys, ids, paths, root))
    rows = found[0]
    if len(found) == 2:
        clash = [i for i, (a, b) in enumerate(zip(*found)) if a >= 0 and b >= 0 and a != b]
        if clash:
            i = clash[0]
            raise TableError(f"{name}: its id and {cols[1]} columns name different images on {len(clash)} rows (line "
                             f"{df.index[i] + 2}: id {df['id'].iloc[i]!r}, {cols[1]} {df[cols[1]].iloc[i]!r}): leave "
                             "out the one that does not name the images (an id that counts rows, say)")
        rows = [a if a >= 0 else b for a, b in zip(*found)]
    landed = pd.Series(rows)[pd.Series(rows) >= 0]
    if landed.duplicated().any():  # two keys for one image: a file name alone that is also another part's, say
        i = landed.index[landed.duplicated(keep=False)][:2]
        raise TableError(f"{name}: lines {df.index[i[0]] + 2} and {df.index[i[1]] + 2} both name "
                         f"{paths[landed[i[0]]]}: a row per image (one face each)")
    if all(r < 0 for r in rows):
        first = df[cols[0]].iloc[0]
        raise TableError(f"{name}: none of its {len(df)} rows names an image of the data by its "
                         f"{' or '.join(cols)} (theirs: {first!r}; the data's: "
                         f"{ids[0] if cols[0] == 'id' else paths[0]!r})")
    return rows, " and ".join(cols)
