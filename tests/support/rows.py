"""What a refused request must not have written: row counts, read in one query."""

from __future__ import annotations

from izgens.db import Database

__all__ = ["row_counts"]


def row_counts(db: Database, **sources: str) -> dict[str, int]:
    """The number of rows of each source (a table, or a table with its `where`), by name."""
    selects = ", ".join(
        f"(select count(*) from {source}) as {name}" for name, source in sources.items()
    )
    row = db.one(f"select {selects}")
    assert row is not None
    return {name: int(count) for name, count in row.items()}
