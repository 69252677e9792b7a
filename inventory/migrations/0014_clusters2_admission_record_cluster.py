"""Admission records name the cluster whose API server sent the review (the webhook serves every
registered cluster, one path each). The records written before were all the default cluster's."""

from django.conf import settings
from django.db import migrations, models


def default_cluster(apps, schema_editor):
    records = apps.get_model("inventory", "AdmissionRecord")
    records.objects.filter(cluster="").update(cluster=settings.CLUSTER_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0013_clusters_registry"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="admissionrecord",
            name="admission_record_unique",
        ),
        migrations.AddField(
            model_name="admissionrecord",
            name="cluster",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        migrations.RunPython(default_cluster, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="admissionrecord",
            constraint=models.UniqueConstraint(
                fields=("cluster", "resource", "namespace", "name", "codes", "enforced"),
                name="admission_record_cluster_unique",
            ),
        ),
    ]
