"""A small model of the CQL the store uses: table definitions parsed from the migration files
and WHERE conditions. Shared by the CQL rule tests and the in-process Cassandra stand-in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Table:
    name: str
    columns: dict[str, str]
    partition: list[str]
    clustering: list[str]
    order: dict[str, str] = field(default_factory=dict)
    options: str = ""

    @property
    def primary(self) -> list[str]:
        return self.partition + self.clustering


def split_top(text: str) -> list[str]:
    """Split on commas outside () and <>."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "(<"
        depth -= ch in ")>"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [*parts, current.strip()] if current.strip() else parts


def matching(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    raise AssertionError(f"unbalanced parentheses: {text}")


def parse_table(statement: str) -> Table:
    m = re.match(r"CREATE TABLE IF NOT EXISTS (\w+) \(", statement)
    assert m, f"every CREATE TABLE is IF NOT EXISTS, so a migration can be re-run: {statement}"
    end = matching(statement, m.end() - 1)
    body, options = statement[m.end() : end], statement[end + 1 :].strip()
    columns: dict[str, str] = {}
    partition: list[str] = []
    clustering: list[str] = []
    for item in split_top(body):
        if item.upper().startswith("PRIMARY KEY"):
            key = item[item.index("(") + 1 : item.rindex(")")].strip()
            if key.startswith("("):
                close = matching(key, 0)
                partition = [c.strip() for c in key[1:close].split(",")]
                rest = key[close + 1 :].strip(" ,")
            else:
                first, _, rest = key.partition(",")
                partition = [first.strip()]
            clustering = [c.strip() for c in rest.split(",") if c.strip()]
        else:
            name, type_ = item.split(None, 1)
            columns[name] = type_.strip()
    order = {}
    om = re.search(r"CLUSTERING ORDER BY \(([^)]*)\)", options)
    if om:
        for part in om[1].split(","):
            col, direction = part.split()
            order[col] = direction.upper()
    return Table(m[1], columns, partition, clustering, order, options)


def add_column(tables: dict[str, Table], statement: str) -> None:
    """Apply ``ALTER TABLE t ADD c type`` as Cassandra 4.0 takes it: no COLUMN keyword, no
    IF NOT EXISTS (5.0 only), and an existing column is refused."""
    m = re.fullmatch(r"ALTER TABLE (\w+) ADD (\w+) (\w+(?:<\w+>)?)", statement)
    assert m, f"not an ALTER TABLE ... ADD that Cassandra 4.0 takes: {statement}"
    table = tables[m[1]]
    if m[2] in table.columns:
        from cassandra import InvalidRequest

        raise InvalidRequest(
            f"Invalid column name {m[2]} because it conflicts with an existing column"
        )
    table.columns[m[2]] = m[3]


def conditions(where: str) -> list[tuple[str, str]]:
    result = []
    for cond in re.split(r"\s+AND\s+", where.strip()):
        m = re.fullmatch(r"(\w+)\s*(=|<=|>=|<|>|IN)\s*(\?|true|false|\(.*\))", cond.strip())
        assert m, f"unexpected condition {cond!r}"
        result.append((m[1], m[2]))
    return result
