"""``rt.submit(...)``: validate a competition submission, write it where the host expects it,
and deliver it.

1. ``data`` becomes a table of CSV cells: a pandas DataFrame (pandas is not imported unless
   one is passed), a dict of columns, a list of rows (mappings, or sequences in the sample's
   column order), or the path of an existing CSV file.
2. The table is checked against the sample submission — ``sample=`` or the one found under
   ``rt.paths.input`` (Kaggle: ``/kaggle/input/competitions/<slug>/sample_submission.csv`` in the
   2026 layout, ``/kaggle/input/<slug>/sample_submission.csv`` before; host-evidence.md §2):
   same columns in the same order, same row count, the same set of ids (the sample's first
   column, when its values are unique), no missing values, values of the sample's types.
   Rows are written in the sample's id order. Any failure raises
   :class:`~portarun.errors.SubmissionError` listing what to change, and nothing is written.
3. The file is written atomically (temporary file, fsync, rename) to ``rt.paths.output /
   filename`` — ``/kaggle/working/submission.csv`` on Kaggle, the file a code competition scores.
4. The ``portarun_submit`` hook delivers it. The built-in implementation (``trylast``, so a
   provider plugin can replace it) uploads it when ``rt.paths.output`` is a bucket URL, submits
   it through the official ``kaggle`` package when ``competition=`` is given off Kaggle
   (``dry_run=True`` shows the exact call instead), and offers it for download on Colab.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from ._files import write_text_atomic
from .errors import PortarunWarning, SubmissionError
from .paths import is_remote, join
from .errors import warn

if TYPE_CHECKING:
    from .runtime import Runtime


#: Sample file names Kaggle competitions use (compared case-insensitively).
SAMPLE_NAMES = frozenset({"sample_submission.csv", "samplesubmission.csv"})
#: Hosts where the platform scores the notebook's output file itself, so a competition is
#: submitted from the notebook page, not through the API (Kaggle code competitions score
#: /kaggle/working/submission.csv).
PLATFORM_SUBMITS = {"kaggle": "On Kaggle, submit from the notebook: its /kaggle/working/{name} is what the "
                              "competition scores (Output → Submit, or 'Submit to competition')."}
SHOWN = 5  # examples per problem in an error message
_INDEX_COLUMN = re.compile(r"^(Unnamed: 0|index|level_0)$")
_INT = re.compile(r"^[+-]?\d+$")
_BOOLS = frozenset({"true", "false"})


@dataclass(frozen=True)
class Table:
    """A CSV table as text cells: the header and the rows."""

    header: tuple[str, ...]
    rows: list[list[str]]


@dataclass(frozen=True)
class Submission:
    """A written (and possibly sent) submission.

    ``path`` is the local file; ``uploaded_to`` its copy when ``rt.paths.output`` is remote;
    ``sample`` the file it was validated against (``None``: basic checks only); ``reordered``
    whether rows were put in the sample's id order; ``sent`` whether an API received it;
    ``plan`` the exact API call made (or, with ``dry_run``, that would be made); ``notes`` what
    else happened or what to do next.
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


# -- reading data into a table --------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
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


def _read_csv_text(text: str) -> Table:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise SubmissionError("the submission is empty: it has no header row.", [("empty", "no header row")])
    return Table(tuple(header), [row for row in reader if row])


def _from_dataframe(df: Any) -> Table:
    names = [n for n in getattr(df.index, "names", [df.index.name]) if n is not None]
    if names:
        raise SubmissionError(
            f"the DataFrame's index holds the column(s) {names}, which to_csv(index=False) would drop. "
            "Call df.reset_index() so they become columns (or df.reset_index(drop=True) to discard them). "
            "Nothing was written.", [("index_column", f"index named {names}")])
    return _read_csv_text(df.to_csv(index=False))


def to_table(data: Any, columns: Sequence[str] | None = None) -> Table:
    """``data`` as a :class:`Table`; ``columns`` (the sample's) name the cells of rows given
    as plain sequences. Raises :class:`SubmissionError` for shapes it cannot read."""
    if _is_dataframe(data):
        return _from_dataframe(data)
    if isinstance(data, (str, os.PathLike)):
        path = Path(os.fspath(data))
        if not path.is_file():
            raise SubmissionError(f"{path} is not a file. Pass a DataFrame, a dict of columns, a list of rows, "
                                  "or the path of an existing CSV file.", [("input", f"no file {path}")])
        return _read_csv_text(path.read_text(encoding="utf-8-sig"))
    if isinstance(data, Mapping):
        header = tuple(str(k) for k in data)
        cols = [list(v) for v in data.values()]
        lengths = {len(c) for c in cols}
        if len(lengths) > 1:
            detail = ", ".join(f"{h}: {len(c)}" for h, c in zip(header, cols))
            raise SubmissionError(f"the columns have different lengths ({detail}); give every column one value "
                                  "per row. Nothing was written.", [("shape", detail)])
        return Table(header, [[_cell(v) for v in row] for row in zip(*cols)])
    if isinstance(data, Sequence) and not isinstance(data, bytes):
        rows = list(data)
        if rows and all(isinstance(r, Mapping) for r in rows):
            header = tuple(str(k) for k in rows[0])
            bad = [i for i, r in enumerate(rows) if tuple(str(k) for k in r) != header]
            if bad:
                raise SubmissionError(f"rows {bad[:SHOWN]} have different keys from the first row {list(header)}; "
                                      "give every row the same keys. Nothing was written.", [("shape", f"rows {bad[:SHOWN]}")])
            return Table(header, [[_cell(r[k]) for k in r] for r in rows])
        if columns is None:
            raise SubmissionError("rows given as plain sequences need the column names: pass a list of dicts, a "
                                  "dict of columns or a DataFrame, or a sample= whose header names them.",
                                  [("input", "no column names")])
        return Table(tuple(columns), [[_cell(v) for v in r] for r in rows])
    raise SubmissionError(f"cannot read a submission from {type(data).__name__}. Pass a DataFrame, a dict of "
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
        return to_table(sample), path
    found = find_samples(rt, competition)
    if len(found) > 1:
        listed = ", ".join(str(p) for p in found)
        raise SubmissionError(f"found several sample submissions ({listed}); pass sample= with the right one, or "
                              "competition='<slug>'. Nothing was written.", [("sample", listed)])
    return (to_table(found[0]), found[0]) if found else (None, None)


# -- validation -----------------------------------------------------------------------------
def _kind_of(values: Sequence[str]) -> str:
    present = [v for v in values if v != ""]
    if present and all(v.lower() in _BOOLS for v in present):
        return "bool"
    if present and all(_INT.match(v) for v in present):
        return "number"
    try:
        for v in present:
            float(v)
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


def _examples(items: Sequence[Any]) -> str:
    shown = ", ".join(repr(i) for i in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _basic_problems(table: Table, expected: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    index_cols = [h for h in table.header if (_INDEX_COLUMN.match(h) or h == "") and h not in expected]
    if index_cols:
        problems.append(("index_column", f"column(s) {index_cols} look like a saved DataFrame index: drop them, "
                                         "write with df.to_csv(index=False) or read with index_col=0"))
    dupes = sorted({h for h in table.header if table.header.count(h) > 1})
    if dupes:
        problems.append(("columns", f"duplicate column names {dupes}: give each column one name"))
    ragged = [i + 2 for i, r in enumerate(table.rows) if len(r) != len(table.header)]
    if ragged:
        problems.append(("shape", f"lines {_examples(ragged)} do not have {len(table.header)} cells"))
    missing = [(i, table.header[j]) for i, r in enumerate(table.rows) for j, v in enumerate(r)
               if j < len(table.header) and v.strip() == ""]
    if missing:
        problems.append(("missing_values", f"{len(missing)} empty or NaN cells, e.g. (row, column) "
                                           f"{_examples(missing)}: fill them (e.g. with the sample's value)"))
    return problems


def validate(table: Table, sample: Table | None) -> tuple[Table, bool, list[tuple[str, str]]]:
    """Check ``table`` (against ``sample`` if given). Returns the table in the sample's id order,
    whether rows were reordered, and the problems found (empty when valid)."""
    problems = _basic_problems(table, sample.header if sample else ())
    if sample is None or any(k in ("shape", "columns") for k, _ in problems):
        return table, False, problems
    if table.header != sample.header:
        missing = [c for c in sample.header if c not in table.header]
        extra = [c for c in table.header if c not in sample.header]
        if missing or extra:
            if not any(k == "index_column" for k, _ in problems):
                problems.append(("columns", f"columns must be {list(sample.header)}: missing {missing}, unexpected "
                                            f"{extra}; rename or drop columns to match the sample"))
        else:
            problems.append(("column_order", f"columns are in the order {list(table.header)}; the sample's is "
                                             f"{list(sample.header)}: reorder them, e.g. df[{list(sample.header)}]"))
    if len(table.rows) != len(sample.rows):
        problems.append(("row_count", f"{len(table.rows)} rows; the sample has {len(sample.rows)}: predict exactly "
                                      "one row per sample row"))
    if any(k in ("columns",) for k, _ in problems) or set(table.header) != set(sample.header):
        return table, False, problems
    position = [table.header.index(c) for c in sample.header]
    rows = [[r[p] for p in position] for r in table.rows]
    for j, name in enumerate(sample.header[1:], 1):
        kind = _kind_of([r[j] for r in sample.rows])
        bad = [(i, r[j]) for i, r in enumerate(rows) if r[j].strip() != "" and not _fits(r[j], kind)]
        if bad:
            problems.append(("types", f"column {name!r} must hold {kind} values like the sample's, but rows have "
                                      f"{_examples(bad)}: convert them"))
    sample_ids = [r[0] for r in sample.rows]
    reordered = False
    if len(set(sample_ids)) == len(sample_ids):
        ids = [r[0] for r in rows]
        counts = Counter(ids)
        seen = set(counts)
        dupes = [i for i, n in counts.items() if n > 1]
        if dupes:
            problems.append(("duplicate_ids", f"ids {_examples(dupes)} appear more than once in column "
                                              f"{sample.header[0]!r}: keep one row per id"))
        missing_ids = [i for i in sample_ids if i not in seen]
        if missing_ids:
            problems.append(("missing_ids", f"{len(missing_ids)} sample ids are missing, e.g. {_examples(missing_ids)}: "
                                            "predict every id of the sample"))
        unknown = [i for i in dict.fromkeys(ids) if i not in set(sample_ids)]
        if unknown:
            problems.append(("unexpected_ids", f"{len(unknown)} ids are not in the sample, e.g. {_examples(unknown)} "
                                               f"(sample ids look like {_examples(sample_ids[:2])})"))
        if not problems and ids != sample_ids:
            by_id = {r[0]: r for r in rows}
            rows, reordered = [by_id[i] for i in sample_ids], True
    return Table(sample.header, rows), reordered, problems


# -- writing --------------------------------------------------------------------------------
def check_filename(filename: str | os.PathLike[str]) -> PurePosixPath:
    """``filename`` as a safe relative path under the output folder, or :class:`SubmissionError`:
    no absolute path, drive, ``..``, backslash, or name other than ``*.csv``."""
    text = os.fspath(filename)
    problem = None
    if not text or text != text.strip():
        problem = "it is empty or has surrounding spaces"
    elif "\\" in text or PureWindowsPath(text).drive or PurePosixPath(text).is_absolute():
        problem = "it is an absolute path (or has a backslash or drive)"
    elif any(part in ("..", ".") for part in PurePosixPath(text).parts) or "//" in text:
        problem = "it has '.' or '..' parts that lead outside the output folder"
    elif not text.lower().endswith(".csv"):
        problem = "submissions are written as CSV, so the name must end in .csv"
    if problem:
        raise SubmissionError(f"filename {text!r} is not allowed: {problem}. Use a plain name such as "
                              "'submission.csv' (a subfolder like 'subs/v2.csv' is fine). Nothing was written.",
                              [("filename", problem)])
    return PurePosixPath(text)


def write_atomic(path: Path, table: Table) -> None:
    """Write ``table`` as CSV to ``path``: a temporary file beside it, fsync, then rename, so
    ``path`` holds the old file or the whole new one, never part of it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.header)
    writer.writerows(table.rows)
    write_text_atomic(path, buffer.getvalue(), durable=True)


def submit(rt: Runtime, data: Any, filename: str | os.PathLike[str] = "submission.csv", *, sample: Any = None,
           message: str | None = None, competition: str | None = None, dry_run: bool = False) -> Submission:
    """Validate, write and deliver a submission (see the module docstring)."""
    name = check_filename(filename)
    sample_table, sample_path = _sample_for(rt, sample, competition)
    table = to_table(data, sample_table.header if sample_table else None)
    table, reordered, problems = validate(table, sample_table)
    if problems:
        against = f" against the sample {sample_path}" if sample_path else (" against the sample" if sample_table else "")
        lines = "\n".join(f"  - [{kind}] {text}" for kind, text in problems)
        raise SubmissionError(f"the submission is not valid{against}:\n{lines}\nNothing was written.", problems)
    folder = Path(rt.paths.output) if not is_remote(rt.paths.output) else Path(rt.paths.scratch) / "submissions"
    target = folder.joinpath(*name.parts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.resolve().relative_to(folder.resolve())
    except ValueError:
        raise SubmissionError(f"{name} resolves outside the output folder {folder} (through a symlink). Use a "
                              "plain file name. Nothing was written.", [("filename", "outside the output folder")]) from None
    write_atomic(target, table)
    options = {"filename": str(name), "competition": competition, "message": message, "dry_run": dry_run,
               "sample": sample_path, "rows": len(table.rows), "columns": table.header, "reordered": reordered}
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
                              f"submission limit. The file is at {path}.", [("kaggle_api", type(exc).__name__)]) from exc
    return plan, response, True


def deliver(runtime: Runtime, path: Path, options: dict[str, Any]) -> Submission:
    """Built-in delivery: upload to a remote output, submit through the Kaggle API when a
    competition is named (off Kaggle), offer the file for download on Colab."""
    rt, notes = runtime, []
    dry_run = bool(options.get("dry_run"))
    competition, message = options.get("competition"), options.get("message")
    uploaded = None
    if is_remote(rt.paths.output):
        from fsspec.core import url_to_fs

        uploaded = str(join(rt.paths.output, options["filename"]))
        fs, remote = url_to_fs(uploaded)
        fs.put_file(str(path), remote)
    plan, response, sent = None, None, False
    if competition:
        message = message or f"{options['filename']} via portarun"
        platform_note = PLATFORM_SUBMITS.get(rt.host.name)
        if platform_note:
            notes.append(platform_note.format(name=options["filename"]))
        else:
            plan, response, sent = _send_to_kaggle(rt, path, competition, message, dry_run)
            notes.append(("dry run: would call " if dry_run else "called ") + plan)
    if rt.host.name == "colab" and rt.session.interactive and not dry_run and rt.probe.has_module("google.colab"):
        try:
            from google.colab import files  # Colab only

            files.download(str(path))
            notes.append(f"offered {path.name} for download in the browser")
        except Exception as exc:  # the browser side can refuse; the file is safely written
            warn(f"could not offer {path} for download ({type(exc).__name__}: {exc}); it is saved at "
                          f"{path}: download it from the Files panel.")
    return Submission(path=path, rows=int(options["rows"]), columns=tuple(options["columns"]),
                      sample=options.get("sample"), reordered=bool(options.get("reordered")),
                      competition=competition, message=message, dry_run=dry_run, sent=sent, plan=plan,
                      uploaded_to=uploaded, response=response, notes=tuple(notes))
