"""The cluster registry in Django's admin (/admin/, staff only), beside `manage.py cluster`.

Only where the credentials are is edited here (a file path, a Secret's name, in-cluster), never
the credentials themselves; the sweep bookkeeping is shown read-only."""

from __future__ import annotations

from django.contrib import admin

from inventory.models import Cluster


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
