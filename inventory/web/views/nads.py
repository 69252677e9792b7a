"""The NAD builder pages: build (with a live preview), download, apply, list, detail, and lint a
pasted NAD. Thin adapters over inventory.services.nads; the rules are inventory.rules.nad's.

One template per page, htmx requests get a named fragment of it (`nad_new.html#preview`,
`#apply`, `nad_lint.html#findings`). Applying answers HX-Location to the detail page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import slugify
from django.views import View
from django.views.generic import DetailView, ListView
from django_htmx.http import HttpResponseLocation

from inventory.choices import HistoryKind
from inventory.clients.cluster import ClusterError
from inventory.models import (
    Cluster,
    HistoryEntry,
    Interface,
    NetworkAttachment,
    PodAttachment,
)
from inventory.rules import nad
from inventory.services import nads as nad_services
from inventory.services import teams
from inventory.services.errors import Conflict
from inventory.web.forms import (
    FIELDS_BY_TYPE,
    IPAM_FIELDS,
    NadBuilderForm,
    NadLintForm,
    database_id,
    usable_interfaces,
)
from inventory.web.views.common import (
    PageMixin,
    PortalLoginRequiredMixin,
    active_team,
    wants_fragment,
)

BUILDER_TEMPLATE = "inventory/nad_new.html"
SEVERITY_ORDER = {nad.ERROR: 0, nad.WARNING: 1, nad.INFO: 2}


def sorted_findings(findings: Any) -> list[Any]:
    return sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.severity, 3))


def page_context(request: HttpRequest, team: Group | None) -> dict[str, Any]:
    """What base.html's top bar needs (PageMixin provides it to class-based pages)."""
    return {
        "teams": list(teams.teams_for(request.user)),
        "active_team": team,
        "fragment": wants_fragment(request),
    }


def form_problems(form: NadBuilderForm) -> list[str]:
    return [
        f"{form[name].label}: {' '.join(errors)}" if name in form.fields else " ".join(errors)
        for name, errors in form.errors.items()
    ]


def _preview(request: HttpRequest, form: NadBuilderForm, team: Group | None) -> dict[str, Any]:
    """Render the form's request: the result, or why it could not be rendered."""
    if not form.is_valid():
        return {"result": None, "refusals": form_problems(form)}
    arguments = form.service_arguments()
    try:
        result = nad_services.render(user=request.user, team=team, **arguments)
    except (ValidationError, PermissionDenied) as exc:
        texts = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        return {"result": None, "refusals": texts}
    # Said with the preview, before anyone presses Apply: the same rule apply enforces.
    refusal = teams.apply_refusal(request.user, team, arguments["namespace"])
    return {**_shown(result, form), "apply_refusal": refusal}


def _shown(result: nad.BuildResult, form: NadBuilderForm) -> dict[str, Any]:
    """The preview of a rendered request."""
    query = {k: v for k, v in form.data.lists() if k != "csrfmiddlewaretoken"}
    return {
        "result": result,
        "findings": sorted_findings(result.findings),
        "yaml": "---\n".join(n.yaml for n in result.nads),
        "download_query": urlencode(query, doseq=True),
        "refusals": [],
    }


def apply_scope(request: HttpRequest, team: Group | None) -> dict[str, Any]:
    """Where the user, acting for `team`, may apply NADs (services.teams.check_apply's rule):
    staff anywhere, a team into its namespaces, no team or a team without namespaces nowhere
    (the builder then disables Apply and says why; build and download still work)."""
    staff = bool(request.user.is_staff)
    patterns = teams.namespaces_of(team)
    return {
        "apply_anywhere": staff,
        "apply_namespaces": patterns,
        "can_apply": staff or bool(patterns),
    }


class NadBuilderView(PortalLoginRequiredMixin, View):
    """GET /nads/new/?interface=<id>&cluster=<name>: the form, prefilled from the inventory,
    offering the NICs of that cluster (the default one without `cluster`; the NIC's own when
    an interface is given)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        team = active_team(request)
        initial: dict[str, Any] = {"cluster": request.GET.get("cluster", "")[:100]}
        chosen = _prefill_interface(request, team)
        if chosen is not None:
            initial["cluster"] = chosen.node.cluster.name
            initial["interfaces"] = [chosen.pk]
            initial["name"] = slugify(f"{chosen.node.name}-{chosen.name}")[:63]
        form = NadBuilderForm(initial=initial, team=team)
        if form.cluster_name and not Cluster.objects.filter(name=form.cluster_name).exists():
            messages.error(request, f"No cluster named {form.cluster_name}: no NIC is offered.")
        context = _builder_context(request, form, team, preview=None)
        return render(request, BUILDER_TEMPLATE, context)


def _prefill_interface(request: HttpRequest, team: Any) -> Interface | None:
    raw = request.GET.get("interface", "")
    pk = database_id(raw)
    if pk is None:
        return None
    interface = Interface.objects.select_related("node__cluster").filter(pk=pk).first()
    if interface is None:
        messages.error(request, f"No interface with id {raw}.")
        return None
    usable = usable_interfaces(team, interface.node.cluster.name)
    if not usable.filter(pk=interface.pk).exists():
        messages.error(
            request,
            f"{interface.node.name}/{interface.name} cannot be used for a NAD: it is "
            f"{interface.get_state_display()} ({interface.reason or 'no reason recorded'}).",
        )
        return None
    return interface


def _builder_context(
    request: HttpRequest,
    form: NadBuilderForm,
    team: Group | None,
    *,
    preview: dict[str, Any] | None,
) -> dict[str, Any]:
    interfaces = list(form.fields["interfaces"].queryset)
    by_node: dict[str, list[Interface]] = {}
    for interface in interfaces:
        by_node.setdefault(interface.node.name, []).append(interface)
    for offered in by_node.values():
        # NICs first, then the VFs of each PF together, by VF number (a heading per PF).
        offered.sort(
            key=lambda i: (
                bool(i.pf_pci_address),
                i.pf_pci_address,
                i.vf_index if i.vf_index is not None else -1,
                i.display_name,
            )
        )
    selected = {str(v) for v in (form["interfaces"].value() or [])}
    ipam_fields = [
        (form[f"ipam_{name}"], " ".join(f"ipam-{t}" for t, names in FIELDS_BY_TYPE.items()
                                          if name in names))
        for name in IPAM_FIELDS
    ]  # fmt: skip
    clusters = [name for name, _label in form.fields["cluster"].choices if name]
    return {
        **page_context(request, team),
        **apply_scope(request, team),
        "form": form,
        # The cluster chooser appears once the inventory holds more than one cluster.
        "cluster_names": clusters,
        "several_clusters": len(clusters) > 1,
        "core_fields": [
            form[n] for n in ("namespace", "name", "selector", "pod_interface", "cni_version")
        ],  # fmt: skip
        "ipam_fields": ipam_fields,
        "ipam_types": list(FIELDS_BY_TYPE),
        "interfaces_by_node": by_node,
        "selected_interfaces": selected,
        **(preview or {"result": None, "refusals": []}),
    }


class NadPreviewView(PortalLoginRequiredMixin, View):
    """POST: the preview fragment (YAML, pod snippet, findings) for the form as typed.
    GET with download=yaml: the NAD YAML as a file (same query as the form)."""

    def post(self, request: HttpRequest) -> HttpResponse:
        team = active_team(request)
        form = NadBuilderForm(request.POST, team=team)
        # The form asks for a preview as soon as it loads: before an interface is picked or a
        # name typed, the answer is the hint, not a table of errors about empty fields.
        untouched = not request.POST.getlist("interfaces") and not request.POST.get("name")
        preview = None if untouched else _preview(request, form, team)
        context = _builder_context(request, form, team, preview=preview)
        return render(request, f"{BUILDER_TEMPLATE}#preview", context)

    def get(self, request: HttpRequest) -> HttpResponse:
        team = active_team(request)
        form = NadBuilderForm(request.GET, team=team)
        preview = _preview(request, form, team)
        result = preview["result"]
        if result is None or not result.ok:
            problems = preview["refusals"] or [
                f"{f.code}: {f.message}" for f in (result.errors if result else ())
            ]
            return HttpResponse(
                "No NAD: " + "\n".join(problems) + "\n",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        filename = slugify(result.nads[0].name) or "nad"
        response = HttpResponse(preview["yaml"], content_type="text/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.yaml"'
        return response


class NadApplyView(PortalLoginRequiredMixin, View):
    """POST: apply through services.nads.apply. Refusals are shown on the form; success goes to
    the detail page of the (first) NAD created, which lists all of them."""

    def post(self, request: HttpRequest) -> HttpResponse:
        team = active_team(request)
        form = NadBuilderForm(request.POST, team=team)
        errors: list[str] = []
        findings: list[Any] = []
        preview: dict[str, Any] | None = None
        if form.is_valid():
            try:
                rows = nad_services.apply(user=request.user, team=team, **form.service_arguments())
            except nad_services.NadRefused as exc:
                findings = sorted_findings(exc.findings)
                preview = _shown(exc.result, form)
                errors = ["Nothing was applied: the NAD would not work (see the findings)."]
            except ValidationError as exc:
                errors = list(exc.messages)
            except (Conflict, PermissionDenied, ClusterError) as exc:
                errors = [str(exc) or "You may not do that."]
            else:
                url = reverse("inventory:nad-detail", args=[rows[0].pk])
                if len(rows) > 1:
                    url += "?" + urlencode({"applied": ",".join(str(r.pk) for r in rows)})
                names = ", ".join(f"{r.namespace}/{r.name}" for r in rows)
                messages.success(request, f"Applied {names}.")
                if request.htmx:
                    return HttpResponseLocation(url)
                return HttpResponseRedirect(url)
        else:
            errors = form_problems(form)
        context = {
            **_builder_context(
                request, form, team, preview=preview or _preview(request, form, team)
            ),
            "apply_errors": errors,
            "apply_findings": findings,
        }
        if request.htmx:
            return render(request, f"{BUILDER_TEMPLATE}#apply", context)
        return render(request, BUILDER_TEMPLATE, context)


class NadListView(PageMixin, ListView):
    template_name = "inventory/nad_list.html"
    context_object_name = "attachments"
    fragment_name = "table"
    paginate_by = 100

    def get_queryset(self):
        rows = NetworkAttachment.objects.select_related("cluster", "applied_by")
        cluster = self.request.GET.get("cluster", "")
        if cluster:
            rows = rows.filter(cluster__name=cluster)
        return rows.order_by("cluster__name", "namespace", "name", "id")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["cluster_names"] = list(
            Cluster.objects.order_by("name").values_list("name", flat=True)
        )
        context["cluster"] = self.request.GET.get("cluster", "")
        return context


class NadDetailView(PortalLoginRequiredMixin, DetailView):
    """Always the whole page: apply's HX-Location loads it with an htmx request and swaps the
    page's body, as a boosted link would."""

    template_name = "inventory/nad_detail.html"
    context_object_name = "attachment"
    queryset = NetworkAttachment.objects.select_related("cluster", "applied_by")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = {
            **super().get_context_data(**kwargs),
            **page_context(self.request, active_team(self.request)),
        }
        row = self.object
        applied_ids = [
            pk for v in self.request.GET.get("applied", "").split(",") if (pk := database_id(v))
        ]
        applied = list(
            NetworkAttachment.objects.filter(pk__in=applied_ids).order_by("namespace", "name")
        )
        refs = Q(nad_namespace=row.namespace, nad_name=row.name, cluster=row.cluster)
        # The apply's history row holds the YAML and pod snippet as applied; a NAD found in
        # the cluster has none, and the page shows its spec.config instead.
        entry = (
            HistoryEntry.objects.filter(kind=HistoryKind.NAD_APPLY, data__network_attachment=row.pk)
            .select_related("actor", "team")
            .first()
        )
        context.update(
            applied=applied or [row],
            pods=PodAttachment.objects.filter(refs).select_related("node")[:50],
            entry=entry,
            yaml=(entry.data.get("yaml") if entry else "") or "",
            pod_snippet=(entry.data.get("pod_snippet") if entry else "") or "",
        )
        return context


class NadLintView(PortalLoginRequiredMixin, View):
    """GET: the form; POST: the findings for the pasted NAD."""

    template_name = "inventory/nad_lint.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(
            request,
            self.template_name,
            {**page_context(request, active_team(request)), "form": NadLintForm()},
        )

    def post(self, request: HttpRequest) -> HttpResponse:
        form = NadLintForm(request.POST)
        findings = None
        if form.is_valid():
            findings = sorted_findings(
                nad_services.validate_manifest(
                    text=form.cleaned_data["manifest"], cluster=form.cleaned_data["cluster"]
                )
            )
        context = {
            **page_context(request, active_team(request)),
            "form": form,
            "findings": findings,
        }
        name = self.template_name
        if wants_fragment(request):
            name += "#findings"
        return render(request, name, context)
