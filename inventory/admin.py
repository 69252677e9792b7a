"""The admin: teams (Django groups) with their namespaces inline. A team's namespaces (names or
shell patterns such as `ml-*`) say where its pods may take its reserved NICs and where its
members may apply NADs (inventory/rules/teams.py); the pattern is checked by the model's
`clean`, and saving judges the attached pods again, as `manage.py teamnamespaces` does.

And the cluster registry, beside `manage.py cluster` (docs/CLUSTERS.md): only where a cluster's
credentials are is edited here (a file path, a Secret's name, in-cluster), never the credentials
themselves; the sweep bookkeeping is shown read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group

from inventory.models import Cluster, TeamNamespace
from inventory.services import teams


class TeamNamespaceInline(admin.TabularInline):
    model = TeamNamespace
    extra = 1
    verbose_name = "namespace"
    verbose_name_plural = (
        "namespaces (names or shell patterns such as ml-*: where the team may apply NADs and "
        "its pods may take its reserved NICs)"
    )


class TeamAdmin(GroupAdmin):
    inlines = [TeamNamespaceInline]

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        def patterns() -> set[str]:
            return set(
                TeamNamespace.objects.filter(team=form.instance).values_list("pattern", flat=True)
            )

        before = patterns()
        super().save_related(request, form, formsets, change)
        after = patterns()
        if before != after:
            teams.record_namespace_change(
                form.instance, added=after - before, removed=before - after, by=request.user
            )
            teams.judge_attached_nodes()


admin.site.unregister(Group)
admin.site.register(Group, TeamAdmin)


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "enabled",
        "credentials",
        "api_url",
        "last_sweep_ok_at",
        "unreachable_since",
    )
    list_filter = ("enabled",)
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "enabled")}),
        (
            "API credentials (where they are kept; none for the default cluster)",
            {"fields": ("kubeconfig", "kubeconfig_secret", "in_cluster", "context")},
        ),
        (
            "Agent keys",
            {"fields": ("agent_master_key_file", "agent_master_key_previous_file")},
        ),
        (
            "Sweeps",
            {
                "fields": (
                    "api_url",
                    "multus_version",
                    "last_sweep_at",
                    "last_sweep_ok_at",
                    "last_sweep_duration",
                    "last_error",
                    "unreachable_since",
                )
            },
        ),
    )
    readonly_fields = (
        "api_url",
        "last_sweep_at",
        "last_sweep_ok_at",
        "last_sweep_duration",
        "last_error",
        "unreachable_since",
    )

    def get_readonly_fields(self, request, obj=None):
        # The name is part of every agent key of the cluster: set once, never renamed.
        if obj is not None:
            return (*self.readonly_fields, "name")
        return self.readonly_fields
