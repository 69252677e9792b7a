"""The inventory notification names what changed (read/changes.py, read/classes.py): the
statement triggers of migration 0015 on interfaces, nodes and reservations are replaced by
INSERT, UPDATE and DELETE statement triggers with transition tables, which send

- `i:<ids>`: the ids of the interfaces whose rows the statement wrote (a reservation's
  `interface_id`, old and new);
- `n:<ids>`: the ids of the nodes inserted, deleted, or updated in a column the fleet-wide
  classes read (NODE_COLUMNS; an update of any other column, such as a contact time, sends
  nothing);
- `` (empty): anything, read everything again: more ids than fit a notification (MAX_IDS),
  a TRUNCATE, any change to a team (auth_group, unchanged from 0015).

A statement that writes no row sends nothing. NOTIFY is still delivered on commit, and
identical payloads of one transaction are folded into one. A no-op on SQLite."""

from django.db import migrations

CHANNEL = "nicportal_inventory"
EVERYTHING = "nicportal_inventory_changed"  # 0015's function and trigger name: payload ''
NOTIFY = "nicportal_inventory_notify"
PREFIX = "nicportal_inventory"
NODE_COLUMNS = ("id", "name", "cluster_id", "in_cluster", "cni")
# Ids per notification; above it the payload says "everything" (a payload must stay under
# 8000 bytes: 300 ids of up to 19 digits and a comma, and the prefix, fit).
MAX_IDS = 300

# (model, what the payload names, the id column). An UPDATE sends the old and new ids of every
# row written, except on nodes: only the rows where a column of NODE_COLUMNS changed.
_TABLES = (
    ("Interface", "i", "id"),
    ("Reservation", "i", "interface_id"),
    ("Node", "n", "id"),
)


def _function(model: str, kind: str, column: str) -> tuple[str, str]:
    """The trigger function of a table, and its name (only this module's constants are
    interpolated)."""
    name = f"{PREFIX}_{model.lower()}"
    if model == "Node":
        changed = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in NODE_COLUMNS)
        update = (
            f"SELECT array(SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id"  # noqa: S608
            f" WHERE {changed} LIMIT {MAX_IDS + 1}) INTO ids;"
        )
    else:
        update = (
            f"SELECT array(SELECT x FROM (SELECT {column} AS x FROM new_rows"  # noqa: S608
            f" LIMIT {MAX_IDS + 1}) a UNION SELECT x FROM (SELECT {column} AS x FROM old_rows"
            f" LIMIT {MAX_IDS + 1}) b LIMIT {MAX_IDS + 1}) INTO ids;"
        )
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"  # noqa: S608
        " DECLARE ids bigint[];"
        " BEGIN"
        "  IF TG_OP = 'INSERT' THEN"
        f"   SELECT array(SELECT DISTINCT {column} FROM (SELECT {column} FROM new_rows"
        f"    LIMIT {MAX_IDS + 1}) a) INTO ids;"
        "  ELSIF TG_OP = 'DELETE' THEN"
        f"   SELECT array(SELECT DISTINCT {column} FROM (SELECT {column} FROM old_rows"
        f"    LIMIT {MAX_IDS + 1}) a) INTO ids;"
        f"  ELSE {update}"
        "  END IF;"
        f"  PERFORM {NOTIFY}('{kind}', ids);"
        "  RETURN NULL;"
        " END $$"
    ), name


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    # NULLs (a reservation's interface_id never is one) are left out; more than MAX_IDS:
    # everything.
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {NOTIFY}(kind text, ids bigint[]) RETURNS void"
        " LANGUAGE plpgsql AS $$ BEGIN"
        "  ids := array_remove(ids, NULL);"
        "  IF cardinality(ids) = 0 THEN RETURN; END IF;"
        f"  IF cardinality(ids) > {MAX_IDS} THEN PERFORM pg_notify('{CHANNEL}', '');"
        f"  ELSE PERFORM pg_notify('{CHANNEL}', kind || ':' || array_to_string(ids, ','));"
        "  END IF; END $$"
    )
    for model, kind, column in _TABLES:
        table = quote(apps.get_model("inventory", model)._meta.db_table)
        sql, function = _function(model, kind, column)
        schema_editor.execute(sql)
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {EVERYTHING} ON {table}")
        for event, referencing in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            schema_editor.execute(
                f"CREATE TRIGGER {PREFIX}_{event.lower()} AFTER {event} ON {table}"
                f" REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
        # TRUNCATE has no transition table: everything.
        schema_editor.execute(
            f"CREATE TRIGGER {EVERYTHING} AFTER TRUNCATE ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {EVERYTHING}()"
        )


def drop(apps, schema_editor) -> None:
    """Back to 0015: one trigger per table, every statement notifies '' (everything)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    every = "INSERT OR UPDATE OR DELETE OR TRUNCATE"
    for model, _kind, _column in _TABLES:
        table = quote(apps.get_model("inventory", model)._meta.db_table)
        for event in ("insert", "update", "delete"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {PREFIX}_{event} ON {table}")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {EVERYTHING} ON {table}")
        events = (
            f"INSERT OR UPDATE OF {', '.join(NODE_COLUMNS)} OR DELETE OR TRUNCATE"
            if model == "Node"
            else every
        )
        schema_editor.execute(
            f"CREATE TRIGGER {EVERYTHING} AFTER {events} ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {EVERYTHING}()"
        )
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {PREFIX}_{model.lower()}()")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {NOTIFY}(text, bigint[])")


class Migration(migrations.Migration):
    dependencies = [("inventory", "0017_lean_write_indexes")]

    operations = [migrations.RunPython(create, drop)]
