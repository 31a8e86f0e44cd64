"""Applies infra/supabase/migrations in order and records them.

Records go to `supabase_migrations.schema_migrations`, the table the Supabase CLI uses, so
`izgens migrate` and `supabase db push` agree on what has been applied.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["MIGRATION_NAME", "apply_migrations", "bootstrap_path", "migrations_dir", "pending"]

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


def pending(url: str, directory: Path | None = None) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        _ensure_table(conn)
        done = {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
    return [p.name for v, _, p in _files(directory or migrations_dir()) if v not in done]


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
            done = {
                row[0]
                for row in conn.execute("select version from supabase_migrations.schema_migrations")
            }
            for version, name, path in _files(directory or migrations_dir()):
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
# The catalogue the migrations build, as text: infra/supabase/schema.sql holds it, and
# tests/functional/test_schema.py checks that a database migrated from scratch has exactly
# that one. Read from pg_catalog rather than pg_dump, whose text changes between versions;
# the same on PostgreSQL 15 to 18: PG 17's MAINTAIN privilege and PG 18's named NOT NULL
# constraints are left out (the columns' `not null` says the same), and role names are
# written as they are except the migrating role's, which is `owner`.

SCHEMAS = ("izgens", "public")

_GRANTS = """
select case when a.grantee = 0 then 'public' else g.rolname::text end collate "C" as grantee,
       string_agg(lower(a.privilege_type), ', ' order by a.privilege_type collate "C") as privileges
  from aclexplode(%(acl)s) a left join pg_roles g on g.oid = a.grantee
 where a.grantee is distinct from %(owner)s and a.privilege_type <> 'MAINTAIN'
 group by 1 order by 1
"""


def _role(name: str, owner: str) -> str:
    return "owner" if name == owner else name


def _grants(conn, acl: str, owner_oid: int | str, owner: str) -> list[str]:  # type: ignore[no-untyped-def]
    rows = conn.execute(_GRANTS % {"acl": acl, "owner": owner_oid}).fetchall()
    return [f"  grant {privileges} to {_role(grantee, owner)}" for grantee, privileges in rows]


def catalogue(url: str) -> str:
    """Every schema, table, sequence, view, type, function, policy, trigger, grant, default
    privilege and publication entry in schemas izgens and public, sorted by name."""
    import psycopg

    out: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set search_path = ''")  # every name in a definition schema-qualified
        user = conn.execute("select current_user").fetchone()[0]  # type: ignore[index]
        schemas = list(SCHEMAS)

        for oid, name, owner_oid, owner, comment in conn.execute(
            "select n.oid, n.nspname, n.nspowner, r.rolname, obj_description(n.oid, 'pg_namespace')"
            " from pg_namespace n join pg_roles r on r.oid = n.nspowner"
            " where n.nspname = any(%s) order by n.nspname",
            (schemas,),
        ).fetchall():
            out.append(f"schema {name} owned by {_role(owner, user)}")
            if comment:
                out.append(f"  comment {comment!r}")
            out += _grants(
                conn,
                f"coalesce((select nspacl from pg_namespace where oid = {oid}),"
                f" acldefault('n', {owner_oid}))",
                owner_oid,
                user,
            )
        out.append("")

        relations = conn.execute(
            "select c.oid, n.nspname || '.' || c.relname, c.relkind, c.relowner, r.rolname,"
            " c.relrowsecurity, c.relforcerowsecurity, obj_description(c.oid, 'pg_class')"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " join pg_roles r on r.oid = c.relowner"
            " where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c')"
            " order by n.nspname, c.relname",
            (schemas,),
        ).fetchall()
        kinds = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
                 "S": "sequence", "f": "foreign table", "c": "type"}  # fmt: skip
        for oid, name, kind, owner_oid, owner, rls, force_rls, comment in relations:
            out.append(f"{kinds[kind]} {name} owned by {_role(owner, user)}")
            if comment:
                out.append(f"  comment {comment!r}")
            if kind in "rpfcvm":
                for col, typ, notnull, default, identity, generated, col_comment in conn.execute(
                    "select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                    " pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,"
                    " col_description(a.attrelid, a.attnum)"
                    " from pg_attribute a left join pg_attrdef d"
                    " on d.adrelid = a.attrelid and d.adnum = a.attnum"
                    " where a.attrelid = %s and a.attnum > 0 and not a.attisdropped"
                    " order by a.attnum",
                    (oid,),
                ).fetchall():
                    line = f"  column {col} {typ}"
                    if notnull:
                        line += " not null"
                    if identity:
                        line += " generated " + ("always" if identity == "a" else "by default")
                        line += " as identity"
                    elif generated:
                        line += f" generated always as ({default}) stored"
                    elif default is not None:
                        line += f" default {default}"
                    out.append(line)
                    if col_comment:
                        out.append(f"    comment {col_comment!r}")
            if kind in "vm":
                view = conn.execute("select pg_get_viewdef(%s)", (oid,)).fetchone()[0]  # type: ignore[index]
                out.append(f"  as {' '.join(view.split())}")
            if kind == "S":
                seq = conn.execute(
                    "select format_type(seqtypid, null), seqstart, seqincrement, seqmin, seqmax,"
                    " seqcache, seqcycle from pg_sequence where seqrelid = %s",
                    (oid,),
                ).fetchone()
                assert seq is not None
                out.append(
                    f"  {seq[0]} start {seq[1]} increment {seq[2]} min {seq[3]} max {seq[4]}"
                    f" cache {seq[5]}" + (" cycle" if seq[6] else "")
                )
                owned = conn.execute(
                    "select t.relname || '.' || a.attname from pg_depend d"
                    " join pg_class t on t.oid = d.refobjid"
                    " join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid"
                    " where d.classid = 'pg_class'::regclass and d.objid = %s"
                    " and d.deptype in ('a', 'i')",
                    (oid,),
                ).fetchone()
                if owned:
                    out.append(f"  owned by column {owned[0]}")
            for cname, cdef in conn.execute(
                "select conname, pg_get_constraintdef(oid) from pg_constraint"
                " where conrelid = %s and contype <> 'n' order by 1",
                (oid,),
            ).fetchall():
                out.append(f"  constraint {cname} {cdef}")
            for (idef,) in conn.execute(
                "select pg_get_indexdef(i.indexrelid) from pg_index i"
                " join pg_class c on c.oid = i.indexrelid where i.indrelid = %s order by c.relname",
                (oid,),
            ).fetchall():
                out.append(f"  {idef}")
            for (tdef,) in conn.execute(
                "select pg_get_triggerdef(oid) from pg_trigger"
                " where tgrelid = %s and not tgisinternal order by tgname",
                (oid,),
            ).fetchall():
                out.append(f"  {tdef}")
            if kind in "rp":
                out.append(
                    "  row level security "
                    + ("enabled" if rls else "disabled")
                    + (", forced" if force_rls else "")
                )
            for pname, permissive, roles, cmd, qual, check in conn.execute(
                "select policyname, permissive, array_to_string(array(select unnest(roles)"
                " order by 1), ', '), cmd, qual, with_check from pg_policies"
                " where schemaname || '.' || tablename = %s order by 1",
                (name,),
            ).fetchall():
                line = f"  policy {pname} {permissive.lower()} for {cmd.lower()} to {roles}"
                if qual is not None:
                    line += f" using {qual}"
                if check is not None:
                    line += f" with check {check}"
                out.append(line)
            acl_kind = "s" if kind == "S" else "r"
            out += _grants(
                conn,
                f"coalesce((select relacl from pg_class where oid = {oid}),"
                f" acldefault('{acl_kind}', {owner_oid}))",
                owner_oid,
                user,
            )
            for col, privileges in conn.execute(
                "select a.attname, string_agg(coalesce(g.rolname, 'public') || ' '"
                " || lower(x.privilege_type), ', ' order by g.rolname, x.privilege_type collate \"C\")"
                " from pg_attribute a cross join aclexplode(a.attacl) x"
                " left join pg_roles g on g.oid = x.grantee"
                " where a.attrelid = %s and a.attacl is not null group by 1 order by 1",
                (oid,),
            ).fetchall():
                out.append(f"  column grants {col}: {privileges}")
            out.append("")

        for name, typtype, detail in conn.execute(
            "select n.nspname || '.' || t.typname, t.typtype, case t.typtype"
            " when 'e' then (select string_agg(quote_literal(enumlabel), ', ' order by enumsortorder)"
            "   from pg_enum where enumtypid = t.oid)"
            " when 'd' then format_type(t.typbasetype, t.typtypmod) || coalesce(' ' ||"
            "   (select string_agg(pg_get_constraintdef(oid), ' ' order by conname)"
            "      from pg_constraint where contypid = t.oid), '')"
            " end"
            " from pg_type t join pg_namespace n on n.oid = t.typnamespace"
            " where n.nspname = any(%s) and t.typtype in ('e', 'd', 'r', 'm') order by n.nspname, t.typname",
            (schemas,),
        ).fetchall():
            out += [f"type {name} ({typtype}) {detail or ''}".rstrip(), ""]

        for oid, owner_oid, owner, definition, comment in conn.execute(
            "select p.oid, p.proowner, r.rolname, pg_get_functiondef(p.oid),"
            " obj_description(p.oid, 'pg_proc')"
            " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " join pg_roles r on r.oid = p.proowner"
            " where n.nspname = any(%s) and p.prokind in ('f', 'p')"
            " order by n.nspname, p.proname, pg_get_function_identity_arguments(p.oid) collate \"C\"",
            (schemas,),
        ).fetchall():
            out.append(definition.rstrip())
            out.append(f"  -- owned by {_role(owner, user)}")
            if comment:
                out.append(f"  -- comment {comment!r}")
            grants = _grants(
                conn,
                f"coalesce((select proacl from pg_proc where oid = {oid}),"
                f" acldefault('f', {owner_oid}))",
                owner_oid,
                user,
            )
            out += [f"  --{g[1:]}" for g in grants] or ["  -- no grants"]
            out.append("")

        for role, schema, objtype, acl in conn.execute(
            "select r.rolname, coalesce(n.nspname, '(all schemas)'), d.defaclobjtype, d.oid"
            " from pg_default_acl d join pg_roles r on r.oid = d.defaclrole"
            " left join pg_namespace n on n.oid = d.defaclnamespace"
            " where n.nspname is null or n.nspname = any(%s) order by r.rolname, n.nspname, 3",
            (schemas,),
        ).fetchall():
            objects = {"r": "tables", "S": "sequences", "f": "functions", "T": "types",
                       "n": "schemas"}[objtype]  # fmt: skip
            out.append(f"default privileges of {_role(role, user)} on {objects} in {schema}")
            out += _grants(
                conn, f"(select defaclacl from pg_default_acl where oid = {acl})", "null", user
            )
            out.append("")

        for pub, alltables, ins, upd, dele, trunc in conn.execute(
            "select pubname, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate"
            " from pg_publication order by 1"
        ).fetchall():
            ops = [op for op, on in zip(("insert", "update", "delete", "truncate"),
                                        (ins, upd, dele, trunc), strict=True) if on]  # fmt: skip
            out.append(f"publication {pub} of {', '.join(ops)}" + (" (all tables)" if alltables else ""))
            for (table,) in conn.execute(
                "select schemaname || '.' || tablename from pg_publication_tables"
                " where pubname = %s and schemaname = any(%s) order by schemaname, tablename",
                (pub, schemas),
            ).fetchall():
                out.append(f"  table {table}")
            out.append("")
    return "\n".join(out).rstrip() + "\n"
