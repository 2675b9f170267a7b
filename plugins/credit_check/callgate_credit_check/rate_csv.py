"""Reading a rate table from CSV.

::

    prefix,currency,per_minute,connect_fee,increments,name
    +46,EUR,0.0083,0,60/60,Sweden
    +4670,EUR,0.12,0.01,30/6,Sweden mobile
    +1,USD,0.01,,1/1,North America

Columns (the header row is required; order is free):

* ``prefix`` (required): destination prefix, international (``+46 70``, ``0046 70`` or
  ``4670``, read by :func:`callgate.phone.parse_prefix`); the longest prefix of the
  dialled number wins.
* ``currency`` (required): ISO-4217 code; a call is rated in its account's currency.
* ``per_minute`` (required): price per minute, at most 6 decimal places.
* ``connect_fee`` (optional, default 0): charged once for a call that connected.
* ``increments`` (optional, default ``60/60``): billing increments ``first/next``.
* ``name`` (optional): a label shown by ``callgate credit quote``.

Blank lines and lines starting with ``#`` are skipped.  The whole file is
checked before anything is imported: one bad line is an error naming the line
and the column, and nothing is imported.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from callgate.phone import PhoneNumberError, parse_prefix

from .money import MoneyError, money_text, parse_currency, to_micros
from .rating import Increments, Rate, RatingError

REQUIRED = ("prefix", "currency", "per_minute")
OPTIONAL = ("connect_fee", "increments", "name")


class RateFileError(ValueError):
    """The CSV cannot be imported; the message names the line and what is wrong."""


def normalize_prefix(text: str) -> str:
    """``"+46 70"``, ``"0046 70"`` -> ``"4670"``: the digits of a destination prefix."""
    try:
        return parse_prefix(str(text)).removeprefix("+")
    except PhoneNumberError as exc:
        raise RateFileError(f"prefix {exc}") from None


def read_rates(path: Path) -> list[Rate]:
    """Every rate in the CSV file at ``path`` (UTF-8, with or without a byte order mark), or RateFileError naming the
    file and the line (a file in another encoding too); OSError when it cannot be read."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RateFileError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as "
                            f"UTF-8") from None
    return parse_rates(text, source=str(path))


def parse_rates(text: str, *, source: str = "<rates>") -> list[Rate]:
    """Every rate in a CSV text, or RateFileError for the first problem (``rates.csv:4: per_minute: ...``)."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise RateFileError(f"{source}: no header row and no rates")
    header_no, header_line = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_line]))]
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    if unknown:
        raise RateFileError(f"{source}:{header_no}: unknown column {unknown[0]!r}; "
                            f"columns are {', '.join(REQUIRED + OPTIONAL)}")
    missing = [h for h in REQUIRED if h not in header]
    if missing:
        raise RateFileError(f"{source}:{header_no}: missing column {missing[0]!r} "
                            f"(required: {', '.join(REQUIRED)})")
    if len(set(header)) != len(header):
        raise RateFileError(f"{source}:{header_no}: a column is named twice")
    rates: list[Rate] = []
    seen: dict[tuple[str, str], int] = {}
    for line_no, line in lines[1:]:
        cells = next(csv.reader(io.StringIO(line)))
        if len(cells) != len(header):
            raise RateFileError(f"{source}:{line_no}: {len(cells)} values for {len(header)} columns")
        row = {h: c.strip() for h, c in zip(header, cells)}
        rate = _rate(row, f"{source}:{line_no}")
        key = (rate.currency, rate.prefix)
        if key in seen:
            raise RateFileError(f"{source}:{line_no}: prefix +{rate.prefix} in {rate.currency} is already "
                                f"on line {seen[key]}")
        seen[key] = line_no
        rates.append(rate)
    if not rates:
        raise RateFileError(f"{source}: no rates after the header row")
    return rates


def _rate(row: dict[str, str], where: str) -> Rate:
    try:
        prefix = normalize_prefix(row["prefix"])
        currency = parse_currency(row["currency"])
        per_minute = to_micros(row["per_minute"], what="per_minute")
        connect_fee = to_micros(row.get("connect_fee") or "0", what="connect_fee")
        increments = Increments.parse(row.get("increments") or "60/60")
    except (RateFileError, MoneyError, RatingError) as exc:   # each message names its column
        raise RateFileError(f"{where}: {exc}") from None
    return Rate(currency=currency, per_minute=per_minute, increments=increments, connect_fee=connect_fee,
                prefix=prefix, name=row.get("name", ""))


def format_rates(rates: list[Rate]) -> str:
    """A rate table as CSV that ``parse_rates`` reads back (``callgate credit rates export``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prefix", "currency", "per_minute", "connect_fee", "increments", "name"])
    for r in rates:
        writer.writerow([f"+{r.prefix}", r.currency, money_text(r.per_minute), money_text(r.connect_fee),
                         str(r.increments), r.name])
    return out.getvalue()
