"""Applies infra/supabase/migrations in order and records them; describes what they built.

Records go to `supabase_migrations.schema_migrations`, the table the Supabase CLI uses, so
`izgens migrate` and `supabase db push` agree on what has been applied. `catalogue` is the
schema a database holds as text, the form of infra/supabase/schema.txt (docs/migrations.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "MIGRATION_NAME",
    "apply_migrations",
    "bootstrap_path",
    "catalogue",
    "migrations_dir",
    "pending",
    "schema_path",
]

MIGRATION_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x1295_0001


def _infra_dir() -> Path:
    override = os.environ.get("IZGENS_INFRA_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "infra"


def migrations_dir() -> Path:
    return _infra_dir() / "supabase" / "migrations"


def bootstrap_path() -> Path:
    return _infra_dir() / "supabase" / "bootstrap" / "auth.sql"


def schema_path() -> Path:
    return _infra_dir() / "supabase" / "schema.txt"


def _files(directory: Path) -> list[tuple[str, str, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration {path.name} is not named YYYYMMDDHHMMSS_name.sql")
        found.append((match.group(1), match.group(2), path))
    return found


def _ensure_table(conn) -> None:  # type: ignore[no-untyped-def]
    conn.execute("create schema if not exists supabase_migrations")
    conn.execute(
        "create table if not exists supabase_migrations.schema_migrations"
        " (version text primary key, statements text[], name text)"
    )


def _applied(conn, files: list[tuple[str, str, Path]]) -> set[str]:  # type: ignore[no-untyped-def]
    """The versions recorded as applied. A version no file has means the database was built
    from another chain (the one squashed in issue 16, say): refused, as `supabase db push`
    refuses, rather than building the files on top of it."""
    done = {
        row[0] for row in conn.execute("select version from supabase_migrations.schema_migrations")
    }
    unknown = sorted(done - {version for version, _, _ in files})
    if unknown:
        raise RuntimeError(
            f"the database records migrations no file here has ({', '.join(unknown)}):"
            " it was built from another migration chain. A local"
            " database is rebuilt by deleting it (the dev stack's: $IZGENS_STATE_DIR/pg,"
            " by default ~/.local/state/izgens/pg)"
        )
    return done


def pending(url: str, directory: Path | None = None) -> list[str]:
    import psycopg

    files = _files(directory or migrations_dir())
    with psycopg.connect(url, autocommit=True) as conn:
        _ensure_table(conn)
        done = _applied(conn, files)
    return [p.name for v, _, p in files if v not in done]


def apply_migrations(
    url: str, *, bootstrap_auth: bool = False, directory: Path | None = None
) -> list[str]:
    """Apply every pending migration, each in its own transaction; returns their names.

    `bootstrap_auth` first loads the plain-Postgres stand-in for Supabase's auth schema
    (dev stack and tests only). Concurrent callers queue on an advisory lock.
    """
    import psycopg

    applied = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            if bootstrap_auth:
                conn.execute(bootstrap_path().read_text())
            _ensure_table(conn)
            files = _files(directory or migrations_dir())
            done = _applied(conn, files)
            for version, name, path in files:
                if version in done:
                    continue
                sql = path.read_text()
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "insert into supabase_migrations.schema_migrations (version, statements, name)"
                        " values (%s, %s, %s)",
                        (version, [sql], name),
                    )
                applied.append(path.name)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


# ---------------------------------------------------------------------------------------
# The catalogue: what the migrations built in schemas izgens and public, one line per
# column, constraint, index, trigger, policy and grant, each function as
# pg_get_functiondef gives it, sorted by name. Read from pg_catalog rather than pg_dump,
# whose text changes between versions, so it reads the same on PostgreSQL 15 to 18: PG 17's
# MAINTAIN privilege and PG 18's named NOT NULL constraints are left out (a column's `not
# null` says the same), and the role that ran the migrations is written `owner`.

SCHEMAS = ["izgens", "public"]
_HEADER = (
    "-- What infra/supabase/migrations build in schemas izgens and public, after the",
    "-- bootstrap the tests and the dev stack run first (infra/supabase/bootstrap/auth.sql).",
    "-- Written by `python infra/schema.py`, never by hand: a migration and the change it makes",
    "-- here are reviewed together (docs/migrations.md, tests/functional/test_schema.py).",
    "",
)
_RELATION_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
                   "S": "sequence", "f": "foreign table", "c": "type"}  # fmt: skip
_DEFAULT_ACL_KINDS = {
    "r": "tables",
    "S": "sequences",
    "f": "functions",
    "T": "types",
    "n": "schemas",
}


def catalogue(url: str) -> str:
    """The schema this database holds, as text (the form of infra/supabase/schema.txt)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set search_path = ''")  # every name in a definition schema-qualified
        owner = conn.execute("select current_user").fetchone()[0]  # type: ignore[index]
        out = list(_HEADER)
        for part in (_schemas, _relations, _types, _functions, _default_privileges, _publications):
            out += part(conn, owner)
    return "\n".join(out).rstrip() + "\n"


def _role(name: str | None, owner: str) -> str:
    return "owner" if name == owner else name or "public"


def _grants(  # type: ignore[no-untyped-def]
    conn, acl_sql: str, owner: str, prefix: str = "  ", *, with_owner: bool = False
) -> list[str]:
    """The privileges in an ACL (an SQL expression), by grantee; the owner's own left out
    unless `with_owner` (they are all of them, except in a default-privileges entry)."""
    rows = conn.execute(
        "select g.rolname, string_agg(lower(a.privilege_type), ', '"
        '   order by a.privilege_type collate "C")'
        f" from aclexplode({acl_sql}) a left join pg_roles g on g.oid = a.grantee"
        " where a.privilege_type <> 'MAINTAIN' and (%s or g.rolname is distinct from %s)"
        " group by g.rolname order by coalesce(g.rolname, '')",
        (with_owner, owner),
    ).fetchall()
    return [
        f"{prefix}grant {privileges} to {_role(grantee, owner)}" for grantee, privileges in rows
    ]


def _schemas(conn, owner: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for oid, name, schema_owner, comment in conn.execute(
        "select n.oid, n.nspname, r.rolname, obj_description(n.oid, 'pg_namespace')"
        " from pg_namespace n join pg_roles r on r.oid = n.nspowner"
        " where n.nspname = any(%s) order by n.nspname",
        (SCHEMAS,),
    ).fetchall():
        out.append(f"schema {name} owned by {_role(schema_owner, owner)}")
        if comment:
            out.append(f"  comment {comment!r}")
        acl = f"(select coalesce(nspacl, acldefault('n', nspowner)) from pg_namespace where oid = {oid})"
        out += _grants(conn, acl, owner)
        out.append("")
    return out


def _relations(conn, owner: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for oid, name, kind, rel_owner, rls, forced, comment in conn.execute(
        "select c.oid, n.nspname || '.' || c.relname, c.relkind, r.rolname, c.relrowsecurity,"
        " c.relforcerowsecurity, obj_description(c.oid, 'pg_class')"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " join pg_roles r on r.oid = c.relowner"
        " where n.nspname = any(%s) and c.relkind = any(%s) order by n.nspname, c.relname",
        (SCHEMAS, list(_RELATION_KINDS)),
    ).fetchall():
        out.append(f"{_RELATION_KINDS[kind]} {name} owned by {_role(rel_owner, owner)}")
        if comment:
            out.append(f"  comment {comment!r}")
        if kind == "S":
            out += _sequence(conn, oid)
        else:
            out += _columns(conn, oid)
        if kind in "vm":
            view = conn.execute("select pg_get_viewdef(%s)", (oid,)).fetchone()[0]  # type: ignore[index]
            out.append(f"  as {' '.join(view.split())}")
        for sql, prefix in (
            (
                "select conname || ' ' || pg_get_constraintdef(oid) from pg_constraint"
                " where conrelid = %s and contype <> 'n' order by conname",
                "constraint ",
            ),
            (
                "select pg_get_indexdef(i.indexrelid) from pg_index i"
                " join pg_class c on c.oid = i.indexrelid where i.indrelid = %s order by c.relname",
                "",
            ),
            (
                "select pg_get_triggerdef(oid) from pg_trigger"
                " where tgrelid = %s and not tgisinternal order by tgname",
                "",
            ),
        ):
            out += [f"  {prefix}{line}" for (line,) in conn.execute(sql, (oid,)).fetchall()]
        if kind in "rp":
            out.append(f"  row level security {'enabled' if rls else 'disabled'}"
                       + (", forced" if forced else ""))  # fmt: skip
        for policy, permissive, roles, cmd, qual, check in conn.execute(
            "select policyname, lower(permissive), array_to_string(array(select unnest(roles)"
            " order by 1), ', '), lower(cmd), qual, with_check from pg_policies"
            " where schemaname || '.' || tablename = %s order by policyname",
            (name,),
        ).fetchall():
            out.append(
                f"  policy {policy} {permissive} for {cmd} to {roles}"
                + (f" using {qual}" if qual is not None else "")
                + (f" with check {check}" if check is not None else "")
            )
        default = "s" if kind == "S" else "r"
        acl = f"(select coalesce(relacl, acldefault('{default}', relowner)) from pg_class where oid = {oid})"
        out += _grants(conn, acl, owner)
        for number, column in conn.execute(
            "select attnum, attname from pg_attribute where attrelid = %s and attacl is not null"
            " order by attnum",
            (oid,),
        ).fetchall():
            acl = f"(select attacl from pg_attribute where attrelid = {oid} and attnum = {number})"
            out += _grants(conn, acl, owner, prefix=f"  column {column} ")
        out.append("")
    return out


def _columns(conn, oid: int) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for name, type_, not_null, default, identity, generated, comment in conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
        " pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,"
        " col_description(a.attrelid, a.attnum)"
        " from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum"
        " where a.attrelid = %s and a.attnum > 0 and not a.attisdropped order by a.attnum",
        (oid,),
    ).fetchall():
        line = f"  column {name} {type_}" + (" not null" if not_null else "")
        if identity:
            line += f" generated {'always' if identity == 'a' else 'by default'} as identity"
        elif generated:
            line += f" generated always as ({default}) stored"
        elif default is not None:
            line += f" default {default}"
        out.append(line)
        if comment:
            out.append(f"    comment {comment!r}")
    return out


def _sequence(conn, oid: int) -> list[str]:  # type: ignore[no-untyped-def]
    type_, start, step, low, high, cache, cycle, owned_by = conn.execute(
        "select format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,"
        " s.seqcache, s.seqcycle, (select t.relname || '.' || a.attname from pg_depend d"
        "   join pg_class t on t.oid = d.refobjid"
        "   join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid"
        "  where d.classid = 'pg_class'::regclass and d.objid = s.seqrelid"
        "    and d.deptype in ('a', 'i'))"
        " from pg_sequence s where s.seqrelid = %s",
        (oid,),
    ).fetchone()
    line = f"  {type_} start {start} increment {step} min {low} max {high} cache {cache}"
    return [line + (" cycle" if cycle else "")] + ([f"  owned by {owned_by}"] if owned_by else [])


def _types(conn, owner: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Enums and domains (tables' row types are their tables)."""
    out = []
    for name, detail in conn.execute(
        "select n.nspname || '.' || t.typname, case t.typtype"
        " when 'e' then 'enum (' || (select string_agg(quote_literal(enumlabel), ', '"
        "   order by enumsortorder) from pg_enum where enumtypid = t.oid) || ')'"
        " else 'domain ' || format_type(t.typbasetype, t.typtypmod) || coalesce(' ' ||"
        "   (select string_agg(pg_get_constraintdef(oid), ' ' order by conname)"
        "      from pg_constraint where contypid = t.oid), '') end"
        " from pg_type t join pg_namespace n on n.oid = t.typnamespace"
        " where n.nspname = any(%s) and t.typtype in ('e', 'd') order by n.nspname, t.typname",
        (SCHEMAS,),
    ).fetchall():
        out += [f"type {name} {detail}", ""]
    return out


def _functions(conn, owner: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for oid, fn_owner, definition, comment in conn.execute(
        "select p.oid, r.rolname, pg_get_functiondef(p.oid), obj_description(p.oid, 'pg_proc')"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " join pg_roles r on r.oid = p.proowner"
        " where n.nspname = any(%s) and p.prokind in ('f', 'p')"
        " order by n.nspname, p.proname,"
        '   pg_get_function_identity_arguments(p.oid) collate "C"',
        (SCHEMAS,),
    ).fetchall():
        out += [definition.rstrip(), f"  -- owned by {_role(fn_owner, owner)}"]
        if comment:
            out.append(f"  -- comment {comment!r}")
        acl = f"(select coalesce(proacl, acldefault('f', proowner)) from pg_proc where oid = {oid})"
        out += _grants(conn, acl, owner, prefix="  -- ") or ["  -- no grants"]
        out.append("")
    return out


def _default_privileges(conn, owner: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for oid, role, schema, kind in conn.execute(
        "select d.oid, r.rolname, coalesce(n.nspname, 'all schemas'), d.defaclobjtype"
        " from pg_default_acl d join pg_roles r on r.oid = d.defaclrole"
        " left join pg_namespace n on n.oid = d.defaclnamespace"
        " where n.nspname is null or n.nspname = any(%s)"
        " order by r.rolname, n.nspname nulls first, d.defaclobjtype",
        (SCHEMAS,),
    ).fetchall():
        objects = _DEFAULT_ACL_KINDS[kind]
        out.append(f"default privileges of {_role(role, owner)} on {objects} in {schema}")
        acl = f"(select defaclacl from pg_default_acl where oid = {oid})"
        out += _grants(conn, acl, owner, with_owner=True)
        out.append("")
    return out


def _publications(conn, owner: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for name, all_tables, *ops in conn.execute(
        "select pubname, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate"
        " from pg_publication order by pubname"
    ).fetchall():
        published = [
            op for op, on in zip(("insert", "update", "delete", "truncate"), ops, strict=True) if on
        ]
        out.append(f"publication {name} of {', '.join(published)}"
                   + (" (all tables)" if all_tables else ""))  # fmt: skip
        out += [
            f"  table {table}"
            for (table,) in conn.execute(
                "select schemaname || '.' || tablename from pg_publication_tables"
                " where pubname = %s and schemaname = any(%s) order by schemaname, tablename",
                (name, SCHEMAS),
            ).fetchall()
        ]
        out.append("")
    return out
