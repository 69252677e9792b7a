"""PostgreSQL tells every listening server process that what a fleet-wide admission review reads
has changed: a statement trigger on each table read/admission.py `device_classes()` reads calls
pg_notify('nicportal_inventory', ''). NOTIFY is delivered on commit, and identical payloads of
one transaction are folded into one, so a sweep's many statements cost one notification per
transaction (COPY fires the INSERT trigger too). The node table notifies only for updates of the
columns the review reads (its contact times and findings change without one). A no-op on
SQLite, which has no LISTEN: its reviews read the database every time."""

from django.db import migrations

CHANNEL = "nicportal_inventory"
FUNCTION = "nicportal_inventory_changed"
TRIGGER = "nicportal_inventory_changed"
# The node columns device_classes() reads (tests/integration/test_admission_class_cache.py
# holds the query to this list); any other update of a node row does not notify.
NODE_COLUMNS = ("id", "name", "cluster_id", "in_cluster", "cni")


def _tables(apps) -> list[tuple[str, str]]:
    """(table, the events that notify) of every table device_classes() reads."""
    every = "INSERT OR UPDATE OR DELETE OR TRUNCATE"
    node = f"INSERT OR UPDATE OF {', '.join(NODE_COLUMNS)} OR DELETE OR TRUNCATE"
    return [
        (apps.get_model("inventory", "Interface")._meta.db_table, every),
        (apps.get_model("inventory", "Node")._meta.db_table, node),
        (apps.get_model("inventory", "Reservation")._meta.db_table, every),
        (apps.get_model("auth", "Group")._meta.db_table, every),
    ]


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    quote = schema_editor.quote_name
    for table, events in _tables(apps):
        schema_editor.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER {events} ON {quote(table)}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for table, _events in _tables(apps):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {quote(table)}")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0014_clusters2_admission_record_cluster"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create, drop)]
