"""What every table model shares: the declarative base and its naming convention, the column
types, the lengths of text columns, and CHECK constraints built from a value list.

Datetimes are always timezone-aware UTC in Python. On PostgreSQL they are `timestamptz`; SQLite
has no time zones, so they are stored as naive UTC text in one fixed format, which keeps
comparisons in SQL (e.g. `until > now`) correct.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, DateTime, Dialect, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Named constraints, so that migrations (and SQLite batch migrations) can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Short identifiers (actor, zone, source) and free text (reason) have separate types so the
# migration and the models can be compared column by column.
NAME = 200
SUBJECT = 64   # an IPv6 network with prefix fits in 43 characters
EMAIL = 254    # the longest address SMTP carries (RFC 5321)

# A 64-bit key that numbers itself. SQLite auto-numbers only an INTEGER PRIMARY KEY (the rowid).
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def one_of(column: str, values: Iterable[str]) -> CheckConstraint:
    """`column IN ('a', 'b', ...)` in the order of `values`, named after the column, so the
    constraint is "ck_<table>_<column>" as the migrations name it."""
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=column)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out, on every backend. Naive datetimes are refused: a naive
    time is ambiguous (local? UTC?) and a ban ending an hour early is a real bug."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: the store only takes timezone-aware datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), list[str]: JSON()}
