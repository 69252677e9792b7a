"""The admin: teams (Django groups) with their namespaces inline. A team's namespaces (names or
shell patterns such as `ml-*`) say where its pods may take its reserved NICs and where its
members may apply NADs (inventory/rules/teams.py); the pattern is checked by the model's
`clean`, and saving judges the attached pods again, as `manage.py teamnamespaces` does."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group

from inventory.models import TeamNamespace
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
        before = set(TeamNamespace.objects.filter(team=form.instance).values_list("pattern"))
        super().save_related(request, form, formsets, change)
        after = set(TeamNamespace.objects.filter(team=form.instance).values_list("pattern"))
        if before != after:
            teams.judge_attached_nodes()


admin.site.unregister(Group)
admin.site.register(Group, TeamAdmin)
