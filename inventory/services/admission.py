"""The admission webhook's workflow: an AdmissionReview body in, the status and body to answer
out. The door (inventory/webhook.py) only moves bytes; the rules are inventory/rules/admission/;
the facts come from read/admission.py (an in-memory index and one query per review).

For every request, in this order:
1. parse: a body that is not an AdmissionReview v1 with a uid is a 400 (nothing to answer);
2. decide: NADs on CREATE/UPDATE, pods on CREATE; anything else is allowed untouched;
3. apply the mode: `enforce` denies; `warn` allows and turns the denial into warnings;
4. record a denial (or would-be denial) in AdmissionRecord (in the webhook server: queued for
   the process's writer thread, off the response path: services/admission_records.py), unless
   the request is a dry run (`kubectl --dry-run=server`): a dry run changes nothing, this record
   included. It is still counted in the metrics (label dry_run="true"), which are not state
   anyone acts on;
5. count the decision and its latency (in this process, flushed to Redis at most once a second:
   shared by every server process and read by /metrics) and log one key=value line.

When a step raises (database down, a bug), the review is "errored" and answered as the
configured failure policy says: Ignore allows with a warning, Fail denies with code 500 (in
enforce mode only: warn mode never denies). The
API server never sees a 500 from this server, so the failure policy the operator chose is the
one that applies.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from inventory.read import admission as admission_facts
from inventory.rules import multus, nad
from inventory.rules.admission import decide, fleet, placement
from inventory.rules.admission.review import (
    AdmissionRequest,
    Decision,
    ReviewError,
    parse_review,
    response,
)
from inventory.rules.nad import fleet as nad_fleet
from inventory.rules.nad import render
from inventory.services import admission_records

log = logging.getLogger("inventory.admission")

ALLOWED, WARNED, DENIED, ERRORED = "allowed", "warned", "denied", "errored"
DECISIONS = (ALLOWED, WARNED, DENIED, ERRORED)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RESOURCES = {decide.NADS: "nads", decide.PODS: "pods"}
# Fleet-wide pods are judged on device classes (rules/admission/fleet.py), in O(classes); False
# judges them node by node (tests compare both).
FLEET_CLASSES = True


def review(body: bytes, *, cluster: str = "") -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for one AdmissionReview request body sent by the API server of
    `cluster` (a registry name, from the webhook's path; the default cluster for ""). A name the
    registry does not hold is an error answered as the failure policy says, naming it."""
    started = time.perf_counter()
    try:
        request = parse_review(body)
    except ReviewError as exc:
        _count(
            "invalid", ERRORED, settings.WEBHOOK_MODE, False, time.perf_counter() - started, cluster
        )
        log.warning("admission refused body=invalid error=%r", str(exc))
        return 400, {"error": str(exc)}
    resource = RESOURCES.get(request.resource_key, "other")
    mode = settings.WEBHOOK_MODE
    try:
        decision = decide_request(request, cluster=cluster)
    except Exception as exc:
        log.exception(
            "admission error uid=%s resource=%s cluster=%s", request.uid, resource, cluster or "-"
        )
        return 200, _errored(request, resource, mode, exc, started, cluster)
    answer, outcome = _answer(request, decision, mode)
    if outcome == DENIED and not request.dry_run:
        _record(request, decision, enforced=mode == "enforce", cluster=cluster)
    elapsed = time.perf_counter() - started
    _count(resource, outcome, mode, request.dry_run, elapsed, cluster)
    log.info(
        "admission uid=%s resource=%s operation=%s namespace=%s name=%s user=%s decision=%s "
        "mode=%s dry_run=%s codes=%s warnings=%d latency_ms=%.2f",
        request.uid,
        resource,
        request.operation,
        request.namespace or "-",
        _object_name(request) or "-",
        request.username or "-",
        outcome,
        mode,
        str(request.dry_run).lower(),
        ",".join(decision.codes) or "-",
        len(answer["response"].get("warnings", ())),
        elapsed * 1000,
    )
    return 200, answer


def decide_request(request: AdmissionRequest, *, cluster: str = "") -> Decision:
    """The decision before any mode is applied (no side effects), against the inventory of
    `cluster` (the default cluster for "")."""
    if request.resource_key == decide.NADS and request.operation in {"CREATE", "UPDATE"}:
        return _decide_nad(request, cluster)
    if request.resource_key == decide.PODS and request.operation == "CREATE":
        if not request.sub_resource:
            return _decide_pod(request, cluster)
    return Decision(allowed=True, judged=False)


def _decide_nad(request: AdmissionRequest, cluster: str) -> Decision:
    new = decide.nad_object(request.object, namespace=request.namespace, name=request.name)
    old = None
    if request.operation == "UPDATE" and request.old_object is not None:
        old = decide.nad_object(request.old_object, namespace=request.namespace, name=request.name)
    if new.problem:
        return decide.decide_nad(
            request, new, devices_by_node=None, plugins_by_node={}, multus_version=""
        )
    index = admission_facts.INDEX.get(cluster)
    notes: list[str] = []
    selector = decide.nad_selector(new.config, new.annotations)
    old_selector = decide.nad_selector(old.config, old.annotations) if old else None
    selectors = [s for s in (selector, old_selector) if s is not None]
    inventory: dict[str, Sequence[nad.DeviceFacts]] | None
    if not index.nodes:
        inventory = None
        notes.append(
            f"NICPortal has no inventory of cluster {index.cluster} yet: only the NAD itself "
            "was checked, not the devices it selects."
        )
    elif selector is not None and selector.selector == "kernelpath":
        inventory = None
        notes.append(
            "NICPortal does not record sysfs paths: a kernelpath selector is not checked "
            "against the inventory."
        )
    else:
        # The nodes the NAD can land on: those its nicportal.io/nodes annotation names (the
        # linter checks only those), else every node.
        landing = decide.nad_nodes(new.annotations)
        if FLEET_CLASSES and landing is None and selector and set(selectors) == {selector}:
            # Every node, one device: grouped (rules/nad/fleet.py).
            classes = admission_facts.device_classes(
                index, selector=selector, count=_count_class_cache
            )
            if classes is not None:
                view = nad_fleet.FleetView(
                    nodes=index.nodes.keys(), classes=classes, versions=index.version_findings
                )
                try:
                    return decide.decide_nad(
                        request,
                        new,
                        old=old,
                        devices_by_node=view.inventory,
                        # The read members' (the view answers for the other nodes' plugins).
                        plugins_by_node={
                            n: index.plugins[n] for n in view.inventory if n in index.plugins
                        },
                        multus_version=index.multus_version,
                        notes=notes,
                        fleet=view,
                    )
                except nad_fleet.ClassMismatch:
                    log.warning("admission fleet classes disagree; linting node by node")
        names = sorted(n for n in landing if n in index.nodes) if landing else list(index.nodes)
        if landing and len(names) < len(landing):
            notes.append(
                f"NICPortal: {', '.join(sorted(landing - set(names)))} (in "
                f"{render.NODES_ANNOTATION}) not in its inventory: not checked there."
            )
        found = (
            admission_facts.devices(
                index, selectors=selectors, nodes=names if landing is not None else None
            )
            if selectors and names
            else {}
        )
        inventory = dict.fromkeys(names, ())  # the linter reads a node without it as "absent"
        inventory.update(found)
    return decide.decide_nad(
        request,
        new,
        old=old,
        devices_by_node=inventory,
        plugins_by_node=index.plugins,
        multus_version=index.multus_version,
        notes=notes,
    )


def _decide_pod(request: AdmissionRequest, cluster: str) -> Decision:
    pod = request.object if isinstance(request.object, dict) else {}
    metadata = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    text = annotations.get(multus.NETWORKS_ANNOTATION) if isinstance(annotations, dict) else None
    name = _object_name(request)
    if not isinstance(text, str) or not text.strip():
        return Decision(allowed=True, summary=f"pod {request.namespace}/{name}", judged=False)
    summary = f"pod {request.namespace}/{name}"
    try:
        selections = multus.parse_networks(text, pod_namespace=request.namespace)
        where = placement.pod_placement(pod)
    except (multus.MultusAnnotationError, placement.PlacementError) as exc:
        return Decision(
            allowed=True,
            summary=summary,
            warnings=(f"NICPortal could not read this pod ({exc}): its NICs were not checked.",),
            judged=False,
        )
    index = admission_facts.INDEX.get(cluster)
    attachments = []
    for selection in selections:
        entry = index.nads.get(selection.nad_key)
        attachments.append(
            decide.Attachment(
                selection=selection,
                known=entry is not None,
                host_device=bool(entry and entry.host_device),
                selector=entry.selector if entry else None,
                nad_team=entry.team if entry else "",
            )
        )
    selectors = [a.selector for a in attachments if a.selector is not None]
    pinned = where.pinned_names()
    candidates: list[str] = []
    unknown: list[str] = []
    if selectors:
        if pinned is not None:
            # Names pinned through kubernetes.io/hostname are node names on kubeadm, MicroK8s
            # and most distributions (the NAD builder's pod snippet assumes the same); the
            # labels are still checked below.
            unknown = sorted(n for n in pinned if n not in index.nodes)
            pool = [index.nodes[n] for n in sorted(pinned) if n in index.nodes]
            candidates = [n.name for n in pool if where.matches(n.name, n.labels)]
        else:
            candidates = list(admission_facts.candidates(index, where))
    judge = functools.partial(
        decide.decide_pod,
        namespace=request.namespace,
        pod=name,
        attachments=attachments,
        candidates=candidates,
        unknown_nodes=unknown,
        team_namespaces=index.team_namespaces,
    )
    if not candidates:
        return judge(devices={})
    if FLEET_CLASSES and pinned is None and len(set(selectors)) == 1:
        # A pod that may run on any node: its one device, grouped (rules/admission/fleet.py).
        classes = admission_facts.device_classes(
            index,
            selector=selectors[0],
            nodes=candidates if len(candidates) < len(index.nodes) else None,
            count=_count_class_cache,
        )
        if classes is not None:
            try:
                return judge(devices={}, classes=classes)
            except fleet.ClassMismatch:
                log.warning("admission fleet classes disagree; judging node by node")
    found = admission_facts.devices(
        index, selectors=selectors, nodes=candidates if pinned is not None else None
    )
    return judge(devices=found)


def _answer(request: AdmissionRequest, decision: Decision, mode: str) -> tuple[dict, str]:
    if decision.allowed:
        outcome = WARNED if decision.warnings else ALLOWED
        return response(request.uid, allowed=True, warnings=decision.warnings), outcome
    if mode == "warn":
        would = [f"NICPortal (warn mode) would deny: {c.text()}" for c in decision.causes]
        body = response(request.uid, allowed=True, warnings=[*would, *decision.warnings])
        return body, DENIED
    body = response(
        request.uid,
        allowed=False,
        code=decision.code,
        reason=decision.reason,
        message=decision.message(),
        causes=decision.causes,
        warnings=decision.warnings,
        subject={"group": request.group, "kind": _kind(request), "name": _object_name(request)},
    )
    return body, DENIED


def _errored(
    request: AdmissionRequest,
    resource: str,
    mode: str,
    exc: Exception,
    started: float,
    cluster: str = "",
) -> dict[str, Any]:
    what = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    # Warn mode never denies, not even on an error: it is how a cluster tries the webhook out.
    if settings.WEBHOOK_FAILURE_POLICY == "Fail" and mode == "enforce":
        body = response(
            request.uid,
            allowed=False,
            code=500,
            reason="InternalError",
            message=f"NICPortal could not check this request ({what}); failurePolicy is Fail.",
        )
    else:
        body = response(
            request.uid,
            allowed=True,
            warnings=[
                f"NICPortal could not check this request ({what}); allowed "
                f"({'warn mode' if mode == 'warn' else 'failurePolicy Ignore'})."
            ],
        )
    _count(resource, ERRORED, mode, request.dry_run, time.perf_counter() - started, cluster)
    return body


def _kind(request: AdmissionRequest) -> str:
    obj = request.object if isinstance(request.object, dict) else {}
    return obj.get("kind") if isinstance(obj.get("kind"), str) else ""


def _object_name(request: AdmissionRequest) -> str:
    if request.name:
        return request.name
    obj = request.object if isinstance(request.object, dict) else {}
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if isinstance(metadata.get("name"), str) and metadata["name"]:
        return metadata["name"]
    generate = metadata.get("generateName")
    return f"{generate}*" if isinstance(generate, str) and generate else ""


# --- records ---------------------------------------------------------------------------------


def _record(
    request: AdmissionRequest, decision: Decision, *, enforced: bool, cluster: str = ""
) -> None:
    """Count this denial in the AdmissionRecord of its object, reason and mode: queued for the
    process's writer thread in the webhook server, written now elsewhere
    (services/admission_records.py). A failure to record never changes the answer."""
    entry = admission_records.Entry.of(
        cluster=(cluster or settings.CLUSTER_NAME)[:100],
        resource=request.resource[:64],
        namespace=request.namespace[:63],
        name=_object_name(request)[:253],
        codes=",".join(decision.codes)[:300],
        enforced=enforced,
        operation=request.operation[:10],
        username=request.username[:253],
        uid=request.uid[:64],
        message=decision.message(),
        last_at=timezone.now(),
    )
    admission_records.record(entry)


# --- metrics ---------------------------------------------------------------------------------

METRICS_KEY = "nicportal:admission:metrics"


@functools.cache
def _redis(url: str) -> Any:
    import redis  # comes with celery[redis]; the embedded set-up without Redis never loads it

    # Short timeouts: a Redis outage costs a review 0.2 s at most, never its answer.
    return redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2)


# Counts wait in this process and go to Redis at most once a FLUSH_EVERY seconds (one pipeline):
# a Redis round trip on every review would be most of a busy server's time. /metrics may so lag
# by that much, and a process that dies loses at most that much counting.
FLUSH_EVERY = 1.0
_pending: Counter[str] = Counter()
_pending_lock = threading.Lock()
_flushed_at = 0.0


def _count(
    resource: str, outcome: str, mode: str, dry_run: bool, seconds: float, cluster: str = ""
) -> None:
    """Add one decision to the counters (flushed to the shared store when due), under the
    cluster whose API server sent it (the default cluster's name for "")."""
    global _flushed_at
    where = _cluster_label(cluster)
    labels = f"{where}|{resource}|{outcome}|{mode}|{str(dry_run).lower()}"
    bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
    with _pending_lock:
        _pending[f"decision|{labels}"] += 1
        _pending[f"bucket|{where}|{resource}|{bucket}"] += 1
        _pending[f"sum|{where}|{resource}"] += seconds
        due = time.monotonic() - _flushed_at >= FLUSH_EVERY
        if due:
            _flushed_at = time.monotonic()
    if due:
        flush_counters()


def _cluster_label(cluster: str) -> str:
    # "|" separates the fields of a counter's key; a registry name never holds one, a path may.
    return (cluster or settings.CLUSTER_NAME).replace("|", "_")[:100]


def _by_cluster(counters: Mapping[str, float], kind: str, fields: int) -> dict[tuple, float]:
    """The counters of one kind as {(cluster, *labels): value}. Counts stored before the
    cluster label existed (one field fewer) are the default cluster's."""
    found: dict[tuple, float] = {}
    for key, value in counters.items():
        parts = key.split("|")
        if parts[0] != kind:
            continue
        labels = parts[1:]
        if len(labels) == fields - 1:
            labels = [_cluster_label(""), *labels]
        if len(labels) == fields:
            found[tuple(labels)] = found.get(tuple(labels), 0.0) + value
    return found


CLASS_CACHE_RESULTS = ("hit", "patch", "miss", "bypass")


def _count_class_cache(result: str) -> None:
    """Count a fleet-wide review's device classes: remembered (hit), the rows a commit changed
    read again and the rest remembered (patch), read in full and remembered (miss), or read
    with the cache unusable (bypass); flushed with the review's decision."""
    with _pending_lock:
        _pending[f"class_cache|{result}"] += 1


def flush_counters() -> None:
    """Move this process's pending counts to Redis when configured (atomic, shared by every
    process), otherwise to the cache (the embedded set-up: approximate under concurrency).
    A failed flush keeps the counts for the next one; it never fails a review."""
    dropped = admission_records.WRITER.take_dropped()
    with _pending_lock:
        for reason, records in dropped.items():
            _pending[f"records_dropped|{reason}"] += records
        counts = dict(_pending)
        _pending.clear()
    if not counts:
        return
    try:
        if settings.REDIS_URL:
            pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
            for field, amount in counts.items():
                if field.startswith("sum|"):
                    pipe.hincrbyfloat(METRICS_KEY, field, amount)
                else:
                    pipe.hincrby(METRICS_KEY, field, int(amount))
            pipe.execute()
        else:
            from django.core.cache import cache

            data = cache.get(METRICS_KEY) or {}
            for field, amount in counts.items():
                data[field] = data.get(field, 0) + amount
            cache.set(METRICS_KEY, data, None)
    except Exception:
        log.warning("admission metrics not flushed; kept for the next flush", exc_info=True)
        with _pending_lock:
            _pending.update(counts)


def read_counters() -> dict[str, float]:
    flush_counters()  # this process's own pending counts first
    if settings.REDIS_URL:
        raw = _redis(settings.REDIS_URL).hgetall(METRICS_KEY)
        return {k.decode(): float(v) for k, v in raw.items()}
    from django.core.cache import cache

    return {k: float(v) for k, v in (cache.get(METRICS_KEY) or {}).items()}


class AdmissionCollector(Collector):
    """nicportal_admission_decisions_total, nicportal_admission_latency_seconds,
    nicportal_admission_class_cache_total and nicportal_admission_records_dropped_total, summed
    over every webhook server process (the counters live in Redis)."""

    def collect(self) -> Iterator[Metric]:
        try:
            counters = read_counters()
        except Exception:
            log.warning("admission metrics unavailable", exc_info=True)
            return
        decisions = CounterMetricFamily(
            "nicportal_admission_decisions",
            "Admission reviews by cluster, resource and outcome (allowed, warned, denied, "
            'errored); mode="warn" counts would-be denials; dry_run="true" counts kubectl '
            "--dry-run=server.",
            labels=["cluster", "resource", "decision", "mode", "dry_run"],
        )
        counted = _by_cluster(counters, "decision", 5)
        default = _cluster_label("")
        # The default cluster's series exist from the start (zero), in the current mode.
        for resource in ("nads", "pods", "other", "invalid"):
            for outcome in DECISIONS:
                counted.setdefault((default, resource, outcome, settings.WEBHOOK_MODE, "false"), 0)
        for labels, value in sorted(counted.items()):
            decisions.add_metric(list(labels), value)
        yield decisions
        latency = HistogramMetricFamily(
            "nicportal_admission_latency_seconds",
            "Server time per admission review (parse, decide, record or queue the record, count), "
            "by cluster.",
            labels=["cluster", "resource"],
        )
        buckets_of = _by_cluster(counters, "bucket", 3)
        sums = _by_cluster(counters, "sum", 2)
        clusters = {default} | {labels[0] for labels in (*buckets_of, *sums)}
        for cluster in sorted(clusters):
            for resource in ("nads", "pods", "other"):
                cumulative = 0.0
                buckets = []
                for bound in (*map(str, LATENCY_BUCKETS), "+Inf"):
                    cumulative += buckets_of.get((cluster, resource, bound), 0)
                    buckets.append((bound, cumulative))
                if cluster == default or cumulative:
                    latency.add_metric(
                        [cluster, resource], buckets, sums.get((cluster, resource), 0.0)
                    )
        yield latency
        cache = CounterMetricFamily(
            "nicportal_admission_class_cache",
            "Fleet-wide reviews' device classes: remembered (hit), the changed rows read again "
            "(patch), read in full and remembered (miss), read without the cache (bypass: off, "
            "in a transaction, change listener down).",
            labels=["result"],
        )
        for result in CLASS_CACHE_RESULTS:
            cache.add_metric([result], counters.get(f"class_cache|{result}", 0))
        yield cache
        dropped = CounterMetricFamily(
            "nicportal_admission_records_dropped",
            "Denial records not written: the writer's queue was full (queue_full), or a batch "
            "failed twice (write_failed). The denials were answered all the same.",
            labels=["reason"],
        )
        for reason in admission_records.DROP_REASONS:
            dropped.add_metric([reason], counters.get(f"records_dropped|{reason}", 0))
        yield dropped
