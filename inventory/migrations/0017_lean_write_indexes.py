"""Fewer indexes to keep up on every write a sweep makes: the interface's MAC keeps one index
(no LIKE index: no filter matches a MAC by prefix), `present` is indexed for the few absent NICs
only, history's interface index is dropped (history_iface_at leads with it), and its actor and
team indexes hold only the rows that name one (user actions, not sweeps)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("inventory", "0016_history_team_kind"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="historyentry",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="historyentry",
            name="interface",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="history",
                to="inventory.interface",
            ),
        ),
        migrations.AlterField(
            model_name="historyentry",
            name="team",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                to="auth.group",
            ),
        ),
        migrations.AlterField(
            model_name="interface",
            name="mac",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="interface",
            name="present",
            field=models.BooleanField(default=True),
        ),
        migrations.AddIndex(
            model_name="historyentry",
            index=models.Index(
                condition=models.Q(("actor__isnull", False)), fields=["actor"], name="history_actor"
            ),
        ),
        migrations.AddIndex(
            model_name="historyentry",
            index=models.Index(
                condition=models.Q(("team__isnull", False)), fields=["team"], name="history_team"
            ),
        ),
        migrations.AddIndex(
            model_name="interface",
            index=models.Index(fields=["mac"], name="iface_mac"),
        ),
        migrations.AddIndex(
            model_name="interface",
            index=models.Index(
                condition=models.Q(("present", False)),
                fields=["node_name", "name", "id"],
                name="iface_absent",
            ),
        ),
    ]
