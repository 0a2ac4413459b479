"""Vectors bound to SQL in pgvector's binary form: `PackedVector`, its psycopg dumper, and the
SQLAlchemy bind type that passes it through."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy.types import UserDefinedType


class PackedVector:
    """A checked vector (`vector_problem`) as bound to SQL: float32, sent in pgvector's binary
    form (`_PackedVectorDumper`). 8 KB for 2048 numbers instead of ~40 KB of text: on loopback
    TCP the text did not fit the default 16 KB send buffer, so every search and insert waited
    for the server to drain it, and the server parsed 2048 decimals (bench/README.md)."""

    __slots__ = ("values",)

    def __init__(self, values: Sequence[float]) -> None:
        self.values = np.asarray(values, dtype=">f4")  # pgvector stores float4, big-endian


class _PackedVectorDumper(Dumper):
    """pgvector's binary input (`vector_recv`): dimension, a reserved 0, then the numbers.
    With no type OID of its own (the extension's varies by database), PostgreSQL takes the
    parameter's type from its context: the `vector` column written or the CAST around it."""

    format = Format.BINARY
    oid = 0

    def dump(self, obj: PackedVector) -> bytes:
        return _VECTOR_HEADER.pack(len(obj.values), 0) + obj.values.tobytes()


_VECTOR_HEADER = struct.Struct(">HH")


def register_vector_dumper(
    connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
) -> None:
    """Teach a connection to send `PackedVector`s (`make_engine` does it as each one opens:
    psycopg's global adapters reach only connections opened after a registration)."""
    connection.adapters.register_dumper(PackedVector, _PackedVectorDumper)


class VectorParam(UserDefinedType[PackedVector]):
    """A bind parameter holding a `PackedVector`, passed to psycopg as is (no Python bind
    processor, no bind cast): PostgreSQL types it from its context."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "VECTOR"
