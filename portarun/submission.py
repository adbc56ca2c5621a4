"""``rt.submit(...)``: validate a competition submission, write it where the host expects it,
and deliver it.

1. ``data`` becomes a table of CSV cells: a pandas DataFrame (pandas is not imported unless
   one is passed), a dict of columns, a list of rows (mappings, or sequences in the sample's
   column order), or the path of an existing UTF-8 CSV file.
2. The table is checked against the sample submission — ``sample=`` or the one found under
   ``rt.paths.input`` (Kaggle: ``/kaggle/input/competitions/<slug>/sample_submission.csv`` in the
   2026 layout, ``/kaggle/input/<slug>/sample_submission.csv`` before; host-evidence.md §2):
   same columns in the same order, same row count, the same set of ids (the sample's first
   column, when its values are unique), no missing values, values of the sample's types.
   Rows are written in the sample's id order. Without a sample only the basic checks run
   (header, shape, empty, missing and non-finite cells): a :class:`~portarun.errors.PortarunWarning`
   says so and the result's ``checks`` is ``"basic"``. Any failure raises
   :class:`~portarun.errors.SubmissionError` listing what to change, and nothing is written.
3. The file is written atomically (temporary file, fsync, rename) to ``rt.paths.output /
   filename`` — ``/kaggle/working/submission.csv`` on Kaggle, the file a code competition scores.
   A write that fails (disk full, read-only folder, a folder in the way) raises
   ``SubmissionError`` and leaves the previous file as it was.
4. The ``portarun_submit`` hook delivers it. The built-in implementation (``trylast``, so a
   provider plugin can replace it) uploads it when ``rt.paths.output`` is a bucket URL, submits
   it through the official ``kaggle`` package when ``competition=`` is given on a host that does
   not score the file itself (Kaggle does: its provider's ``submission_note`` says how to submit
   there instead; ``dry_run=True`` shows the exact call), then hands it to the provider's
   ``deliver_submission`` (Colab offers it for download in the browser).

Cost: every step is linear in the number of cells and runs over whole columns (set operations,
``map`` over a column), not a Python loop per row: a million-row submission is checked in about
the time pandas takes to read and write it (``benchmarks/bench_submit.py``).
"""
from __future__ import annotations

import csv
import errno
import gc
import io
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from itertools import repeat
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from ._util.files import write_bytes_atomic
from ._util.redact import redact
from .errors import SubmissionError, warn
from .paths import is_remote, join

if TYPE_CHECKING:
    from .runtime import Runtime


#: Sample file names Kaggle competitions use (compared case-insensitively).
SAMPLE_NAMES = frozenset({"sample_submission.csv", "samplesubmission.csv"})
SHOWN = 5  # examples per problem in an error message
#: The longest file or folder name, in bytes, on Linux filesystems (NAME_MAX in the kernel's
#: include/uapi/linux/limits.h); NTFS and APFS allow 255 characters too.
NAME_MAX = 255
_INDEX_COLUMN = re.compile(r"^(Unnamed: 0|index|level_0)$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT_INT = re.compile(r"^\d+\.0+$")  # an integer written as a float: 892.0
_BOOLS = frozenset({"true", "false"})
#: Spellings of NaN and infinity that float() accepts; no metric scores them.
_NON_FINITE = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
#: Characters that make csv.writer quote a cell (delimiter, quote, line ends).
_NEEDS_QUOTES = (",", '"', "\n", "\r")


@dataclass(frozen=True)
class Table:
    """A CSV table as text cells, column by column: a million-row table is a few lists of
    strings, not a million row lists. ``ragged`` holds the line numbers (1-based, header = 1)
    of rows whose cell count differs from the header's; ``columns`` is then empty. ``plain``:
    known to hold no comma, quote or line end in any cell (CSV read without quotes), so it is
    written without looking for cells to quote."""

    header: tuple[str, ...]
    columns: tuple[Sequence[str], ...]
    ragged: tuple[int, ...] = ()
    plain: bool = False

    @property
    def nrows(self) -> int:
        """The number of data rows."""
        return len(self.columns[0]) if self.columns else 0

    def rows(self) -> Iterable[tuple[str, ...]]:
        """The data rows, in order."""
        return zip(*self.columns)


@dataclass(frozen=True)
class SubmitOptions:
    """What ``rt.submit()`` hands the ``portarun_submit`` hook with the written file: the file
    name asked for, the competition, message and ``dry_run`` flag, and what validation found
    (the sample file, row count, columns, whether rows were put in the sample's order, which
    ``checks`` ran: ``"sample"`` or ``"basic"``). ``options["rows"]`` and ``options.get(...)``
    read the fields too, as they did when this was a dict."""

    filename: str
    rows: int
    columns: tuple[str, ...]
    checks: str = "basic"
    competition: str | None = None
    message: str | None = None
    dry_run: bool = False
    sample: Path | None = None
    reordered: bool = False

    def __getitem__(self, name: str) -> Any:
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        """The field ``name``, or ``default`` when there is no such field."""
        return getattr(self, name) if name in self.__dataclass_fields__ else default


@dataclass(frozen=True)
class Submission:
    """A written (and possibly sent) submission.

    ``path`` is the local file; ``uploaded_to`` its copy when ``rt.paths.output`` is remote;
    ``sample`` the file it was validated against; ``checks`` what was checked: ``"sample"``
    (everything, against a sample submission) or ``"basic"`` (no sample was given or found:
    header, shape, empty, missing and non-finite cells only; ids, row count, column names and
    types were not checked); ``reordered`` whether rows were put in the sample's id order;
    ``sent`` whether an API received it; ``plan`` the exact API call made (or, with
    ``dry_run``, that would be made); ``notes`` what else happened or what to do next.
    """

    path: Path
    rows: int
    columns: tuple[str, ...]
    sample: Path | None
    reordered: bool
    competition: str | None = None
    message: str | None = None
    dry_run: bool = False
    sent: bool = False
    plan: str | None = None
    uploaded_to: str | None = None
    response: Any = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    checks: str = "basic"

    def __repr__(self) -> str:  # uploaded_to may be s3://key:secret@...: masked when printed
        from ._util.redact import shown_location

        return shown_location(f"Submission({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in fields(self))})")


# -- reading data into a table --------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):  # pandas' NA and NaT, pandas not imported
        return ""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # numpy scalar
        except (TypeError, ValueError):
            pass
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def _is_dataframe(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "to_csv") and hasattr(data, "index")


def _parse_csv(text: str, what: str) -> Table:
    """``text`` as a table. CSV without quotes (what pandas writes for numbers and plain ids)
    is split column-wise with str methods; anything else goes through :mod:`csv`. Blank lines
    are skipped, as :mod:`csv` does."""
    if not text.strip():
        raise SubmissionError(f"{what} is empty: it has no header row. Nothing was written.",
                              [("empty", f"{what} has no header row")])
    if '"' not in text and "\r" not in text:
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the final line end
        if "" in lines:
            lines = [line for line in lines if line]
        header, body = tuple(lines[0].split(",")), lines[1:]
        width = len(header)
        if not body:
            return Table(header, tuple([] for _ in header))
        if set(map(str.count, body, repeat(","))) == {width - 1}:
            cells = ",".join(body).split(",")
            return Table(header, tuple(cells[j::width] for j in range(width)), plain=True)
    return _parse_csv_module(text, what)


def _parse_csv_module(text: str, what: str) -> Table:
    reader = csv.reader(io.StringIO(text))
    rows: list[list[str]] = []
    try:
        for row in reader:
            if row:
                rows.append(row)
    except csv.Error as exc:
        raise SubmissionError(
            f"{what} cannot be read as CSV at line {reader.line_num}: {exc}. Fix that line (a cell over "
            f"{csv.field_size_limit()} characters needs csv.field_size_limit() raised first). Nothing was written.",
            [("csv", f"line {reader.line_num}: {exc}")]) from None
    header, body = tuple(rows[0]), rows[1:]
    ragged = tuple(i + 2 for i, row in enumerate(body) if len(row) != len(header))
    if ragged:
        return Table(header, (), ragged)
    return Table(header, tuple(map(list, zip(*body))) if body else tuple([] for _ in header))


def _read_csv_file(path: Path, what: str) -> Table:
    """A CSV file as a table, or :class:`SubmissionError` for a missing, unreadable or
    non-UTF-8 file (naming the byte offset and line, never the content)."""
    not_a_file = SubmissionError(f"{what} {path} is not a file. Pass a DataFrame, a dict of columns, a list of "
                                 "rows, or the path of an existing CSV file.", [("input", f"no file {path}")])
    try:
        # Opened without blocking and checked on the open file: a FIFO swapped in after a check
        # by name would block the read forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise not_a_file from None
    except OSError as exc:
        raise SubmissionError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}.",
                              [("input", f"unreadable {path}")]) from None
    try:
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise not_a_file
            os.set_blocking(stream.fileno(), True)
            data = stream.read()
    except OSError as exc:
        raise SubmissionError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}.",
                              [("input", f"unreadable {path}")]) from None
    try:
        return _parse_csv(data.decode("utf-8-sig"), f"{what} {path}")
    except UnicodeDecodeError as exc:
        offset = exc.start
    line, byte = data.count(b"\n", 0, offset) + 1, data[offset]
    raise SubmissionError(
        f"{what} {path} is not UTF-8: byte {offset} (line {line}) is 0x{byte:02x}. Save it as UTF-8 "
        "(pandas: df.to_csv(path, index=False, encoding='utf-8')). Nothing was written.",
        [("encoding", f"{path}: byte {offset}, line {line}")])


def _from_dataframe(df: Any, what: str) -> Table:
    levels = getattr(df.columns, "nlevels", 1)
    if levels > 1:  # to_csv writes one header line per level: the second would read as a data row
        raise SubmissionError(
            f"the DataFrame's columns have {levels} levels (a MultiIndex), which to_csv writes as {levels} header "
            "lines. Flatten them to one name each, e.g. df.columns = ['_'.join(map(str, c)) for c in df.columns]. "
            "Nothing was written.", [("columns", f"{levels} column levels")])
    names = [n for n in getattr(df.index, "names", [df.index.name]) if n is not None]
    if names:
        raise SubmissionError(
            f"the DataFrame's index holds the column(s) {names}, which to_csv(index=False) would drop. "
            "Call df.reset_index() so they become columns (or df.reset_index(drop=True) to discard them). "
            "Nothing was written.", [("index_column", f"index named {names}")])
    return _parse_csv(df.to_csv(index=False), what)


def _column(name: str, values: Any) -> list[str]:
    shape = getattr(values, "shape", None)
    if isinstance(shape, tuple) and len(shape) > 1:  # tolist() would give one list per row, written as text
        raise SubmissionError(
            f"column {name!r} has shape {tuple(shape)}; a column holds one value per row (1-D). Pick the column "
            "you mean (e.g. preds[:, 1]) or give each its own name. Nothing was written.",
            [("shape", f"{name}: shape {tuple(shape)}")])
    if hasattr(values, "tolist") and not isinstance(values, (str, bytes)):
        values = values.tolist()  # numpy array, pandas Series: Python scalars in one C call
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise SubmissionError(
            f"column {name!r} is a single {type(values).__name__}, not a column of values. A dict maps each "
            "column name to its values ({'id': [1, 2], 'target': [0.5, 0.7]}); for one row pass a list of "
            "one dict ([{'id': 1, 'target': 0.5}]). Nothing was written.", [("input", f"{name}: scalar")])
    return list(map(_cell, values))


def _check_series_indexes(header: tuple[str, ...], values: list[Any]) -> None:
    """Refuse pandas Series with different indexes: pandas pairs them by index (a DataFrame of
    them aligns rows), these columns would be paired by position, so predictions sorted another
    way would be written against the wrong ids without a word."""
    series = [(name, v) for name, v in zip(header, values)
              if type(v).__module__.split(".")[0] == "pandas" and getattr(v, "ndim", 0) == 1 and hasattr(v, "index")]
    if len(series) < 2:
        return
    first_name, first = series[0]
    for name, other in series[1:]:
        if not first.index.equals(other.index):
            raise SubmissionError(
                f"columns {first_name!r} and {name!r} are pandas Series with different indexes: pandas would pair "
                "their rows by index, a dict of columns pairs them by position. Build a DataFrame "
                f"(pd.DataFrame({{{first_name!r}: ..., {name!r}: ...}}) aligns them) or pass .to_numpy() of each to "
                "pair them by position. Nothing was written.", [("input", f"{first_name}, {name}: other indexes")])


def _from_rows(rows: list[list[str]], header: tuple[str, ...]) -> Table:
    ragged = tuple(i + 2 for i, row in enumerate(rows) if len(row) != len(header))
    if ragged:
        return Table(header, (), ragged)
    return Table(header, tuple(map(list, zip(*rows))) if rows else tuple([] for _ in header))


def to_table(data: Any, columns: Sequence[str] | None = None, what: str = "the submission") -> Table:
    """``data`` as a :class:`Table`; ``columns`` (the sample's) name the cells of rows given
    as plain sequences. Raises :class:`SubmissionError` for shapes it cannot read."""
    if _is_dataframe(data):
        return _from_dataframe(data, what)
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if "\0" in str(text):
            raise SubmissionError(f"the path of {what} {text!r} contains a NUL character, which no file name can "
                                  "hold. Check how the path was built.", [("input", "NUL in path")])
        return _read_csv_file(Path(text), what)
    if isinstance(data, Mapping):
        header = tuple(str(k) for k in data)
        _check_series_indexes(header, list(data.values()))
        cols = [_column(h, v) for h, v in zip(header, data.values())]
        lengths = {len(c) for c in cols}
        if len(lengths) > 1:
            detail = ", ".join(f"{h}: {len(c)}" for h, c in zip(header, cols))
            raise SubmissionError(f"the columns have different lengths ({detail}); give every column one value "
                                  "per row. Nothing was written.", [("shape", detail)])
        return Table(header, tuple(cols))
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        rows = list(data)
        if rows and all(isinstance(r, Mapping) for r in rows):
            header = tuple(str(k) for k in rows[0])
            bad = [i for i, r in enumerate(rows) if tuple(str(k) for k in r) != header]
            if bad:
                raise SubmissionError(f"rows {bad[:SHOWN]} have different keys from the first row {list(header)}; "
                                      "give every row the same keys. Nothing was written.",
                                      [("shape", f"rows {bad[:SHOWN]}")])
            return _from_rows([[_cell(v) for v in r.values()] for r in rows], header)
        if columns is None:
            raise SubmissionError("rows given as plain sequences need the column names: pass a list of dicts, a "
                                  "dict of columns or a DataFrame, or a sample= whose header names them.",
                                  [("input", "no column names")])
        if any(isinstance(r, (str, bytes)) or not isinstance(r, Iterable) for r in rows):
            odd = next(r for r in rows if isinstance(r, (str, bytes)) or not isinstance(r, Iterable))
            raise SubmissionError("each row must be a sequence of cells (a tuple or list) or a dict; got "
                                  f"{type(odd).__name__}. "
                                  "Nothing was written.", [("input", "row is not a sequence")])
        return _from_rows([[_cell(v) for v in r] for r in rows], tuple(columns))
    raise SubmissionError(f"cannot read {what} from {type(data).__name__}. Pass a DataFrame, a dict of "
                          "columns, a list of rows or the path of a CSV file.", [("input", type(data).__name__)])


# -- finding the sample ---------------------------------------------------------------------
def find_samples(rt: Runtime, competition: str | None = None) -> list[Path]:
    """Sample submissions under ``rt.paths.input``: ``<input>/``, ``<input>/<slug>/`` and
    ``<input>/competitions/<slug>/`` (only ``<slug> == competition`` when it is given)."""
    if is_remote(rt.paths.input) or not Path(rt.paths.input).is_dir():
        return []
    base = Path(rt.paths.input)
    folders = [base, *sorted(p for p in base.iterdir() if p.is_dir())]
    if (base / "competitions").is_dir():
        folders += sorted(p for p in (base / "competitions").iterdir() if p.is_dir())
    if competition is not None:
        folders = [f for f in folders if f.name == competition]
    return [f for folder in folders for f in sorted(folder.iterdir())
            if f.is_file() and f.name.lower() in SAMPLE_NAMES]


def _sample_for(rt: Runtime, sample: Any, competition: str | None) -> tuple[Table | None, Path | None]:
    if sample is not None:
        path = Path(os.fspath(sample)) if isinstance(sample, (str, os.PathLike)) else None
        return to_table(sample, what="the sample"), path
    found = find_samples(rt, competition)
    if len(found) > 1:
        listed = ", ".join(str(p) for p in found)
        raise SubmissionError(f"found several sample submissions ({listed}); pass sample= with the right one, or "
                              "competition='<slug>'. Nothing was written.", [("sample", listed)])
    return (to_table(found[0], what="the sample"), found[0]) if found else (None, None)


# -- validation -----------------------------------------------------------------------------
def _kind_of(values: Iterable[str]) -> str:
    present = set(values)  # a sample's target column is often one repeated value
    present.discard("")
    if present and _BOOLS.issuperset(map(str.lower, present)):
        return "bool"
    if present and all(map(_INT.match, present)):
        return "number"
    try:
        all(map(float, present))
    except ValueError:
        return "text"
    return "number" if present else "text"


def _fits(value: str, kind: str) -> bool:
    if kind == "bool":
        return value.lower() in _BOOLS
    if kind == "number":
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return True


def _all_fit(column: Sequence[str], kind: str) -> bool:
    """Whether every cell of ``column`` fits ``kind``: one pass of C-level ``map``s; the cells
    that do not are then found by :func:`_fits`, only when there are some."""
    if kind == "bool":
        return _BOOLS.issuperset(map(str.lower, column))
    if kind == "number":
        try:
            return all(map(math.isfinite, map(float, column)))
        except ValueError:
            return False
    return True


def _examples(items: Sequence[Any]) -> str:
    shown = ", ".join(repr(i) for i in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _basic_problems(table: Table, expected: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    index_cols = [h for h in table.header if (_INDEX_COLUMN.match(h) or h == "") and h not in expected]
    if index_cols:
        problems.append(("index_column", f"column(s) {index_cols} look like a saved DataFrame index: drop them, "
                                         "write with df.to_csv(index=False) or read with index_col=0"))
    counts = Counter(table.header)
    dupes = sorted(h for h, n in counts.items() if n > 1)
    if dupes:
        problems.append(("columns", f"duplicate column names {dupes}: give each column one name"))
    if table.ragged:
        problems.append(("shape", f"lines {_examples(table.ragged)} do not have {len(table.header)} cells"))
        return problems
    if table.nrows == 0:
        problems.append(("empty", "the header is there but no rows: predict one row per test example"))
    missing: list[tuple[int, str]] = []
    for name, column in zip(table.header, table.columns):
        if "" in column or "" in map(str.strip, column):
            missing += [(i, name) for i, v in enumerate(column) if not v.strip()]
    if missing:
        missing.sort()
        problems.append(("missing_values", f"{len(missing)} empty or NaN cells, e.g. (row, column) "
                                           f"{_examples(missing)}: fill them (e.g. with the sample's value)"))
    return problems


def _non_finite(value: str) -> bool:
    """Whether a cell is NaN or infinite: spelled so, or a number too large for a float (1e999)."""
    text = value.strip().lower()
    if text in _NON_FINITE:
        return True
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _non_finite_problems(table: Table) -> list[tuple[str, str]]:
    """NaN or infinite cells in any column (used when there is no sample whose types would
    catch them): a spelled ``nan``/``inf`` anywhere, or a number column holding one that
    overflows a float."""
    bad: list[tuple[int, str, str]] = []
    for name, column in zip(table.header, table.columns):
        if (_NON_FINITE.intersection(map(str.lower, map(str.strip, column)))
                or (_kind_of(column) == "number" and not _all_fit(column, "number"))):
            bad += [(i, name, v) for i, v in enumerate(column) if _non_finite(v)]
    if not bad:
        return []
    bad.sort()
    return [("non_finite", f"{len(bad)} NaN or infinite cells, e.g. (row, column, value) {_examples(bad)}: no "
                           "metric scores them; clip or fill them")]


def _id_problems(ids: Sequence[str], id_keys: set[str], sample_ids: Sequence[str], sample_set: set[str],
                 id_name: str) -> list[tuple[str, str]]:
    """Duplicate, missing and unexpected ids. ``id_keys`` are the submission's distinct ids,
    ``sample_set`` the sample's: set comparisons, and lists of examples only when there is a
    problem to show."""
    problems: list[tuple[str, str]] = []
    if len(id_keys) != len(ids):
        dupes = [i for i, n in Counter(ids).items() if n > 1]
        problems.append(("duplicate_ids", f"ids {_examples(dupes)} appear more than once in column "
                                          f"{id_name!r}: keep one row per id"))
    if not id_keys >= sample_set:
        missing_ids = [i for i in sample_ids if i not in id_keys]
        problems.append(("missing_ids", f"{len(missing_ids)} sample ids are missing, e.g. {_examples(missing_ids)}: "
                                        "predict every id of the sample"))
    if len(id_keys) != len(sample_set) or problems:
        unknown = [i for i in id_keys if i not in sample_set]
        if unknown:
            problems.append(("unexpected_ids", f"{len(unknown)} ids are not in the sample, e.g. {_examples(unknown)} "
                                               f"(sample ids look like {_examples(list(sample_ids[:2]))})"
                                               + _float_id_hint(unknown, sample_set, id_name)))
    return problems


def _float_id_hint(unknown: Sequence[str], sample_set: set[str], id_name: str) -> str:
    """Advice when the unexpected ids are the sample's integer ids written as floats (``892.0``
    for ``892``), what a pandas id column becomes after a merge that met a NaN."""
    shown = [i for i in unknown[:SHOWN] if _FLOAT_INT.match(i)]
    if not shown or len(shown) < min(len(unknown), SHOWN) or any(i.split(".")[0] not in sample_set for i in shown):
        return ""
    return (f"; they are the sample's integer ids written as floats ({shown[0]!r} for "
            f"{shown[0].split('.')[0]!r}): convert the column, e.g. df[{id_name!r}] = df[{id_name!r}].astype(int)")


def validate(table: Table, sample: Table | None) -> tuple[Table, bool, list[tuple[str, str]]]:
    """Check ``table`` (against ``sample`` if given). Returns the table in the sample's id order,
    whether rows were reordered, and the problems found (empty when valid). Linear in the number
    of cells: each column is hashed into a set at most once."""
    problems = _basic_problems(table, sample.header if sample else ())
    if sample is None:
        return table, False, problems + ([] if table.ragged else _non_finite_problems(table))
    if sample.ragged:
        raise SubmissionError(f"the sample itself has rows of the wrong width (lines {_examples(sample.ragged)}); "
                              "check that sample= is the competition's sample submission.",
                              [("sample", "ragged sample")])
    if any(k in ("shape", "columns") for k, _ in problems):
        return table, False, problems
    if table.header != sample.header:
        missing = [c for c in sample.header if c not in table.header]
        extra = [c for c in table.header if c not in sample.header]
        if missing or extra:
            if not any(k == "index_column" for k, _ in problems):
                near = (" (they differ only in case or surrounding spaces: use the sample's names exactly)"
                        if sorted(c.strip().lower() for c in missing) == sorted(c.strip().lower() for c in extra)
                        else "")
                problems.append(("columns", f"columns must be {list(sample.header)}: missing {missing}, unexpected "
                                            f"{extra}{near}; rename or drop columns to match the sample"))
        else:
            problems.append(("column_order", f"columns are in the order {list(table.header)}; the sample's is "
                                             f"{list(sample.header)}: reorder them, e.g. df[{list(sample.header)}]"))
    if table.nrows != sample.nrows:
        problems.append(("row_count", f"{table.nrows} rows; the sample has {sample.nrows}: predict exactly "
                                      "one row per sample row"))
    if any(k in ("columns",) for k, _ in problems) or set(table.header) != set(sample.header):
        return table, False, problems
    columns = [table.columns[table.header.index(c)] for c in sample.header]
    for name, column, sample_column in zip(sample.header[1:], columns[1:], sample.columns[1:]):
        kind = _kind_of(sample_column)
        if not _all_fit(column, kind):
            bad = [(i, v) for i, v in enumerate(column) if v.strip() != "" and not _fits(v, kind)]
            if bad:
                problems.append(("types", f"column {name!r} must hold {kind} values like the sample's, but rows "
                                          f"have {_examples(bad)}: convert them"))
    ids, sample_ids = columns[0], sample.columns[0]
    reordered = False
    if list(ids) != list(sample_ids):
        # Fast path, one hash join: index each id's other cells, then pop them in the sample's
        # order. n distinct ids popped by n sample ids without a KeyError (a sample id that is
        # missing, or repeated, finds nothing) are exactly the sample's ids, both unique, and
        # the popped cells are the rows in the sample's order. Otherwise the problems are
        # worked out from sets.
        rest = list(zip(*columns[1:])) if len(columns) > 2 else (columns[1] if len(columns) == 2 else ids)
        index = dict(zip(ids, rest))
        popped: list[Any] | None = None
        if len(index) == len(ids) == len(sample_ids):
            try:
                popped = list(map(index.pop, sample_ids))
            except KeyError:
                pass
        if popped is not None:
            if not problems:
                others = [popped] if len(columns) == 2 else list(map(list, zip(*popped))) if len(columns) > 2 else []
                columns = [sample_ids, *others]
                reordered = True
        else:
            sample_set = set(sample_ids)
            if len(sample_set) == len(sample_ids):  # ids are checked only when the sample's are unique
                problems += _id_problems(ids, set(ids), sample_ids, sample_set, sample.header[0])
    return Table(sample.header, tuple(columns), plain=table.plain), reordered, problems


# -- writing --------------------------------------------------------------------------------
def check_filename(filename: str | os.PathLike[str]) -> PurePosixPath:
    """``filename`` as a safe relative path under the output folder, or :class:`SubmissionError`:
    no absolute path, drive, ``..``, backslash, NUL or other control character, part longer
    than :data:`NAME_MAX` bytes, or name other than ``*.csv``."""
    try:
        raw: object = os.fspath(filename)
    except TypeError:
        raw = filename
    if not isinstance(raw, str):
        raise SubmissionError(f"filename {raw!r} is {type(raw).__name__}; pass a str such as 'submission.csv'. "
                              "Nothing was written.", [("filename", "not a str")])
    text, problem = raw, None
    if not text or text != text.strip():
        problem = "it is empty or has surrounding spaces"
    elif any(ord(c) < 32 or c == "\x7f" for c in text):
        problem = "it contains a control character (NUL, newline, ...), which file names cannot or should not hold"
    elif "\\" in text or PureWindowsPath(text).drive or PurePosixPath(text).is_absolute():
        problem = "it is an absolute path (or has a backslash or drive)"
    elif any(part in ("..", ".") for part in PurePosixPath(text).parts) or "//" in text:
        problem = "it has '.' or '..' parts that lead outside the output folder"
    elif not text.lower().endswith(".csv"):
        problem = "submissions are written as CSV, so the name must end in .csv"
    elif any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in PurePosixPath(text).parts):
        problem = f"a part of it is longer than {NAME_MAX} bytes, the longest file name filesystems allow"
    if problem:
        shown = text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"
        raise SubmissionError(f"filename {shown!r} is not allowed: {problem}. Use a plain name such as "
                              "'submission.csv' (a subfolder like 'subs/v2.csv' is fine). Nothing was written.",
                              [("filename", problem)])
    return PurePosixPath(text)


def csv_bytes(table: Table) -> bytes:
    """``table`` as UTF-8 CSV with ``\\n`` line ends, quoted as :mod:`csv` quotes (only cells
    that need it). Tables with no cell to quote, the common case, are joined directly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.header)
    plain = table.nrows > 0 and len(table.header) > 0 and (table.plain or not any(
        mark in joined for joined in map("".join, table.columns) for mark in _NEEDS_QUOTES))
    if plain:
        buffer.write("\n".join(map(",".join, table.rows())))
        buffer.write("\n")
    else:
        writer.writerows(table.rows())
    return buffer.getvalue().encode("utf-8")


def _encoded(table: Table) -> bytes:
    """``table`` as CSV bytes, or :class:`SubmissionError` (``encoding``) naming the first cell
    that UTF-8 cannot encode: a lone surrogate, such as a file name listed with
    ``surrogateescape``. Searched for only after encoding failed, so valid tables cost nothing."""
    try:
        return csv_bytes(table)
    except UnicodeEncodeError:
        pass
    where = next((f"the column name {h!r}" for h in table.header if not _encodable(h)), None)
    if where is None:
        where = next((f"row {i} of column {h!r} ({v!r})" for h, column in zip(table.header, table.columns)
                      for i, v in enumerate(column) if not _encodable(v)), "a cell")
    raise SubmissionError(
        f"{where} holds a character that is not valid Unicode (a lone surrogate, as names read with "
        "surrogateescape carry), so it cannot be written as UTF-8. Decode the bytes it came from properly, or "
        "replace it (text.encode('utf-8', 'replace').decode()). Nothing was written.", [("encoding", where)])


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def write_atomic(path: Path, table: Table) -> None:
    """Write ``table`` as CSV to ``path``: a temporary file beside it, fsync, then rename, so
    ``path`` holds the old file or the whole new one, never part of it. A failed write raises
    :class:`SubmissionError` saying what happened and that the previous file is intact."""
    previous = "the previous file there is intact" if path.is_file() else "nothing was written there"
    if path.is_dir():
        raise SubmissionError(f"cannot write the submission to {path}: a folder of that name is in the way. Remove or "
                              "rename it, or pass another filename. Nothing was written.",
                              [("write", "folder in the way")])
    data = _encoded(table)
    try:
        write_bytes_atomic(path, data, durable=True)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            what, advice = "the disk is full", "free some space (or write to another folder with PORTARUN_OUTPUT_DIR)"
        elif exc.errno == errno.ENAMETOOLONG:
            what, advice = "the path is too long", "use a shorter filename or output folder"
        elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            what, advice = "the folder is not writable", "point PORTARUN_OUTPUT_DIR at a writable folder"
        else:
            what, advice = exc.strerror or type(exc).__name__, "check the output folder"
        raise SubmissionError(f"could not write the submission ({len(data):,} bytes) to {path}: {what}. {advice}; "
                              f"{previous} and the partial file was removed.", [("write", what)]) from None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large table is built and checked. The tables
    hold no reference cycles (reference counting frees them), yet each collection walks every
    live container: on a million-row submission the collector, not the work, took half the time
    (measured with benchmarks/bench_submit.py). Restored on exit, also after an error."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def submit(rt: Runtime, data: Any, filename: str | os.PathLike[str] = "submission.csv", *, sample: Any = None,
           message: str | None = None, competition: str | None = None, dry_run: bool = False) -> Submission:
    """Validate, write and deliver a submission (see the module docstring)."""
    name = check_filename(filename)
    with _gc_paused():
        sample_table, sample_path = _sample_for(rt, sample, competition)
        table = to_table(data, sample_table.header if sample_table else None)
        table, reordered, problems = validate(table, sample_table)
    if problems:
        # Problems quote cells and column names; data that is a secrets file by mistake (".env",
        # /proc/self/environ) must not put its NAME=value credentials into the message.
        problems = [(kind, redact(text)) for kind, text in problems]
        against = (f" against the sample {sample_path}" if sample_path
                   else (" against the sample" if sample_table else ""))
        lines = "\n".join(f"  - [{kind}] {text}" for kind, text in problems)
        raise SubmissionError(f"the submission is not valid{against}:\n{lines}\nNothing was written.", problems)
    checks = "basic" if sample_table is None else "sample"
    if sample_table is None:
        where = "" if is_remote(rt.paths.input) else f" under {rt.paths.input}"
        warn(f"no sample submission was given or found{where}, so {name} got only basic checks (header, shape, "
             "empty, missing and non-finite cells): its ids, row count, column names and types were NOT checked. "
             "Pass sample='.../sample_submission.csv' to validate it.")
    folder = Path(rt.paths.output) if not is_remote(rt.paths.output) else Path(rt.paths.scratch) / "submissions"
    target = folder.joinpath(*name.parts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.resolve().relative_to(folder.resolve())
    except ValueError:
        raise SubmissionError(f"{name} resolves outside the output folder {folder} (through a symlink). Use a "
                              "plain file name. Nothing was written.",
                              [("filename", "outside the output folder")]) from None
    except OSError as exc:
        raise SubmissionError(f"cannot create the folder {target.parent} for the submission: "
                              f"{exc.strerror or type(exc).__name__}. Nothing was written.",
                              [("write", "folder not created")]) from None
    with _gc_paused():
        write_atomic(target, table)
    options = SubmitOptions(filename=str(name), competition=competition, message=message, dry_run=dry_run,
                            sample=sample_path, rows=table.nrows, columns=tuple(table.header), reordered=reordered,
                            checks=checks)
    from .runtime import plugin_set

    result: Submission = plugin_set(rt.probe.env).pm.hook.portarun_submit(runtime=rt, path=target, options=options)
    return result


# -- delivery (the built-in portarun_submit) --------------------------------------------------
def kaggle_credentials(rt: Runtime) -> str | None:
    """Where the ``kaggle`` package will find credentials (a description), or ``None``.
    Sources as the package reads them (Kaggle/kaggle-api ``kaggle_api_extended.py``
    ``authenticate``): ``KAGGLE_API_TOKEN``, ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, or files in
    ``$KAGGLE_CONFIG_DIR`` / ``~/.kaggle`` (``kaggle.json``, ``access_token``)."""
    if rt.probe.getenv("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if rt.probe.getenv("KAGGLE_USERNAME") and rt.probe.getenv("KAGGLE_KEY"):
        return "KAGGLE_USERNAME and KAGGLE_KEY"
    config_dir = rt.probe.getenv("KAGGLE_CONFIG_DIR")
    folders = [Path(config_dir)] if config_dir else [rt.probe.home / ".kaggle"]
    for folder in folders:
        for name in ("kaggle.json", "access_token"):
            if (folder / name).is_file():
                return str(folder / name)
    return None


def _send_to_kaggle(rt: Runtime, path: Path, competition: str, message: str, dry_run: bool) -> tuple[str, Any, bool]:
    plan = f"kaggle.api.competition_submit(file_name={str(path)!r}, message={message!r}, competition={competition!r})"
    if not rt.probe.has_module("kaggle"):
        raise SubmissionError(f"submitting to {competition!r} needs the official kaggle package, which is not "
                              "installed: pip install kaggle. The file was written to " + str(path) + ".",
                              [("kaggle_package", "not installed")])
    creds = kaggle_credentials(rt)
    if creds is None:
        raise SubmissionError(
            f"submitting to {competition!r} needs Kaggle API credentials, and none were found: set KAGGLE_API_TOKEN "
            "(or KAGGLE_USERNAME and KAGGLE_KEY), or save the token from kaggle.com → Settings → API to "
            f"{rt.probe.home / '.kaggle'}. The file was written to {path}.", [("kaggle_credentials", "none found")])
    if dry_run:
        return plan, None, False
    try:
        import kaggle  # authenticates on import; exits the process on failure, hence SystemExit
    except (Exception, SystemExit) as exc:
        raise SubmissionError(f"the kaggle package refused the credentials from {creds} ({type(exc).__name__}). "
                              "Create a new token at kaggle.com → Settings → API. The file was written to "
                              f"{path}.", [("kaggle_credentials", "rejected")]) from None
    try:
        response = kaggle.api.competition_submit(str(path), message, competition)
    except Exception as exc:
        raise SubmissionError(f"Kaggle did not accept the submission to {competition!r}: {type(exc).__name__}: {exc}. "
                              "Check that you joined the competition and accepted its rules, and the daily "
                              f"submission limit. The file is at {path}.",
                              [("kaggle_api", type(exc).__name__)]) from exc
    return plan, response, True


def deliver(runtime: Runtime, path: Path, options: SubmitOptions) -> Submission:
    """Built-in delivery: upload to a remote output, submit through the Kaggle API when a
    competition is named (unless the host scores the file itself:
    :meth:`~portarun.provider.Provider.submission_note`), then the host's own delivery
    (:meth:`~portarun.provider.Provider.deliver_submission`: Colab offers a download)."""
    rt, notes = runtime, []
    dry_run = options.dry_run
    competition, message = options.competition, options.message
    uploaded = None
    if is_remote(rt.paths.output):
        from fsspec.core import url_to_fs

        uploaded = str(join(rt.paths.output, options.filename))
        failed: SubmissionError | None = None
        try:
            fs, remote = url_to_fs(uploaded)
            fs.put_file(str(path), remote)
        except Exception as exc:  # network, credentials, quota: the checked file is safe locally
            from .staging import without_credentials

            failed = SubmissionError(
                f"could not upload the submission to {uploaded}: {type(exc).__name__}: "
                f"{without_credentials(str(exc), uploaded)}. The checked file is at {path}; check the bucket's "
                "credentials (in the environment, not in the URL) and quota, or unset PORTARUN_OUTPUT_DIR to keep it "
                "local.", [("upload", type(exc).__name__)])
        if failed is not None:
            raise failed  # outside the ``except``: the library's error may quote the URL's credentials
    if options.checks == "basic":
        notes.append("only basic checks ran: no sample submission, so ids, row count, column names and types "
                     "were not checked")
    plan, response, sent = None, None, False
    if competition:
        message = message or f"{options.filename} via portarun"
        platform_note = rt.provider.submission_note(options.filename)
        if platform_note:
            notes.append(platform_note)
        else:
            plan, response, sent = _send_to_kaggle(rt, path, competition, message, dry_run)
            notes.append(("dry run: would call " if dry_run else "called ") + plan)
    notes.extend(rt.provider.deliver_submission(rt, path, options))
    return Submission(path=path, rows=options.rows, columns=options.columns,
                      sample=options.sample, reordered=options.reordered,
                      competition=competition, message=message, dry_run=dry_run, sent=sent, plan=plan,
                      uploaded_to=uploaded, response=response, notes=tuple(notes),
                      checks=options.checks)
