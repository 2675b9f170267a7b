"""Reading a rules file (CSV or TOML) into rules, all or nothing.

A file is checked completely before any of it is used: one bad line rejects the
whole file, with every problem listed by line (up to :data:`MAX_REPORTED`), so
a broken edit never half-replaces a list.

CSV: a header row naming the columns (``action`` is required; the others are
``caller, callee, user, callee_type, domain, origination_type, application_key,
name``, in any order); one rule per row; an empty cell is "any"; blank lines and
lines starting with ``#`` are skipped.

TOML: ``[[rules]]`` tables written exactly like ``[[plugins.allowlist.rules]]``
in config.toml.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from .rules import RULE_KEYS, Rule, RuleSpec, compile_rule

MAX_REPORTED = 10
_TOML_RULE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*rules[ \t]*\]\]", re.MULTILINE)


class RulesFileError(ValueError):
    """The rules file cannot be used; the message names the file, the lines and what is wrong."""

    def __init__(self, path: Path | str, problems: list[str], total: int | None = None) -> None:
        total = len(problems) if total is None else total
        shown = problems[:MAX_REPORTED]
        more = f"\n  ... and {total - len(shown)} more" if total > len(shown) else ""
        head = f"{path}: {total} problem{'s' if total != 1 else ''}, file not loaded"
        super().__init__(head + ":\n  " + "\n  ".join(shown) + more)
        self.path = str(path)
        self.problems = problems
        self.total = total


class _RulesDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[RuleSpec] = []


def parse_rules_file(data: bytes, path: Path, *, first_ordinal: int = 0) -> list[Rule]:
    """The rules in a file's bytes (CSV or TOML by the file's suffix); raises :class:`RulesFileError`."""
    return list(iter_rules_file(data, path, first_ordinal=first_ordinal))


def iter_rules_file(data: bytes, path: Path, *, first_ordinal: int = 0) -> Iterator[Rule]:
    """The rules one by one, for indexing as they are read; :class:`RulesFileError` (raised at the
    first unusable line of the header, else after the last row) means none of them may be used."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulesFileError(path, [f"not UTF-8 text (invalid byte at offset {exc.start})"]) from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_rules(text, path, first_ordinal)
    if suffix == ".toml":
        return iter(_toml_rules(text, path, first_ordinal))
    raise RulesFileError(path, ["the file name must end in .csv or .toml"])


def _csv_rules(text: str, path: Path, first_ordinal: int) -> Iterator[Rule]:
    rows = _csv_rows(text)
    try:
        header_row = next(rows, None)
    except csv.Error as exc:
        raise RulesFileError(path, [f"not valid CSV: {exc}"]) from None
    if header_row is None:
        raise RulesFileError(path, ["no header row: the first line must name the columns, e.g. action,caller,callee"])
    header_line, header = header_row
    columns = [c.strip().lower() for c in header]
    problems = []
    unknown = [c for c in columns if c not in RULE_KEYS]
    if unknown:
        problems.append(f"line {header_line}: unknown column(s) {', '.join(map(repr, unknown))}; "
                        f"columns are {', '.join(RULE_KEYS)}")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        problems.append(f"line {header_line}: column(s) {', '.join(map(repr, duplicated))} appear twice")
    if "action" not in columns:
        problems.append(f"line {header_line}: no 'action' column (allow or deny)")
    if problems:
        raise RulesFileError(path, problems)
    return _csv_body(rows, columns, path, first_ordinal)


def _csv_body(rows: Iterator[tuple[int, list[str]]], columns: list[str], path: Path,
              first_ordinal: int) -> Iterator[Rule]:
    name = path.name
    problems: list[str] = []
    total = 0
    ordinal = first_ordinal
    while True:
        try:
            row = next(rows, None)
        except csv.Error as exc:
            total += 1
            problems.append(f"not valid CSV: {exc}")
            break
        if row is None:
            break
        line, cells = row
        try:
            if len(cells) > len(columns):
                raise ValueError(f"{len(cells)} cells but the header names {len(columns)} columns")
            fields = {}
            for column, cell in zip(columns, cells, strict=False):   # a short row: the rest is empty
                cell = cell.strip()
                if cell:
                    fields[column] = cell
            action = fields.get("action", "").lower()
            if action not in ("allow", "deny"):
                raise ValueError(f"action: must be allow or deny, got {fields.get('action', '')!r}")
            fields["action"] = action
            rule = compile_rule(fields, ordinal=ordinal, source=f"{name}:{line}")
        except ValueError as exc:
            total += 1
            if len(problems) < MAX_REPORTED:
                problems.append(f"line {line}: {exc}")
            continue
        if not total:   # once a row is bad the file is lost: only look for more problems
            ordinal += 1
            yield rule
    if total:
        raise RulesFileError(path, problems, total)


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every row that is not blank or a ``#`` comment."""
    reader = csv.reader(io.StringIO(text))
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise csv.Error(f"line {reader.line_num}: {exc}") from None
        line, start = start, reader.line_num + 1
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        yield line, cells


def _toml_rules(text: str, path: Path, first_ordinal: int) -> list[Rule]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(path, [f"not valid TOML: {exc}"]) from None
    written = data.get("rules")
    lines = _toml_rule_lines(text, len(written) if isinstance(written, list) else -1)
    try:
        document = _RulesDocument.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_toml_location(err['loc'], lines)}: {_message(err['msg'])}" for err in exc.errors()]
        raise RulesFileError(path, problems) from None
    name = path.name
    return [compile_rule(spec, ordinal=first_ordinal + i,
                         source=f"{name}:{lines[i]}" if lines else f"{name} rules[{i}]")
            for i, spec in enumerate(document.rules)]


def _toml_rule_lines(text: str, count: int) -> list[int]:
    """The line of each ``[[rules]]`` header, when every rule is written that way; else []."""
    lines = [text.count("\n", 0, m.start()) + 1 for m in _TOML_RULE_HEADER.finditer(text)]
    return lines if len(lines) == count else []


def _toml_location(loc: tuple, lines: list[int]) -> str:
    """``line 12: caller`` (or ``rules[3]: caller``) for a pydantic error location."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        where = f"line {lines[loc[1]]}" if lines else f"rules[{loc[1]}]"
        rest = ".".join(str(p) for p in loc[2:])
        return f"{where}: {rest}" if rest else where
    return ".".join(str(p) for p in loc) or "(top level)"


def _message(msg: str) -> str:
    """pydantic's message without its "Value error, " preamble."""
    return msg.removeprefix("Value error, ")
