"""A pasted NAD (YAML or JSON) into the object the linter reads, with findings for the usual
mistakes: bad YAML, several documents, another kind, spec.config written as a YAML mapping."""

from __future__ import annotations

import json
from typing import Any

import yaml

from inventory.rules import bounded_json
from inventory.rules.nad import render
from inventory.rules.nad.facts import ERROR, Finding, error
from inventory.rules.nad.lint import config_empty, lint

# A NAD manifest nests about 4 levels (spec.config is a string) and holds a few dozen values.
MANIFEST_MAX_DEPTH = 32
MANIFEST_MAX_VALUES = 10_000


def parse_manifest(text: str) -> tuple[dict | None, list[Finding]]:
    """The NAD object, or None with the findings that say why it cannot be read. Warnings
    (an empty spec.config) come with the object."""
    documents: list[Any]
    try:
        if text.lstrip().startswith("{"):
            # JSON first: PyYAML refuses tabs, which JSON allows.
            try:
                documents = [json.loads(text)]
            except ValueError:
                documents = list(yaml.safe_load_all(text))
        else:
            documents = list(yaml.safe_load_all(text))
        # Bounded before anything walks or dumps it: deep nesting, or a list shared a billion
        # times through YAML aliases.
        bounded_json.check(
            documents, max_depth=MANIFEST_MAX_DEPTH, forbidden=None, max_values=MANIFEST_MAX_VALUES
        )
    except (RecursionError, bounded_json.JsonRefused) as exc:
        why = exc.message if isinstance(exc, bounded_json.JsonRefused) else "nested too deeply"
        return None, [
            error(
                "MANIFEST_TOO_LARGE",
                "manifest",
                f"The manifest cannot be read: {why}",
                "Paste one NetworkAttachmentDefinition (a few dozen lines).",
            )
        ]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [
            error(
                "MANIFEST_INVALID_YAML",
                "manifest",
                f"The manifest is not valid YAML: {problem}{where}.",
                "Check the indentation (spaces, not tabs) around that line.",
            )
        ]
    except ValueError as exc:  # a value YAML reads but Python cannot: 5,000-digit integers,
        # dates such as 2026-13-45
        return None, [
            error(
                "MANIFEST_INVALID_YAML",
                "manifest",
                f"The manifest holds a value that cannot be read: {exc}.",
                "Quote the value if it is meant as text.",
            )
        ]
    documents = [d for d in documents if d is not None]
    if not documents:
        return None, [
            error(
                "MANIFEST_EMPTY",
                "manifest",
                "The manifest is empty.",
                "Paste one NetworkAttachmentDefinition.",
            )
        ]
    if len(documents) > 1:
        return None, [
            error(
                "MANIFEST_MULTIPLE_DOCUMENTS",
                "manifest",
                f"The text holds {len(documents)} YAML documents.",
                "Paste one NetworkAttachmentDefinition at a time.",
            )
        ]
    obj = documents[0]
    if not isinstance(obj, dict):
        return None, [
            error(
                "MANIFEST_NOT_OBJECT",
                "manifest",
                f"The manifest is a {type(obj).__name__}, not a Kubernetes object.",
                "Paste a NetworkAttachmentDefinition (apiVersion, kind, metadata, spec).",
            )
        ]
    findings: list[Finding] = []
    if obj.get("kind") != render.KIND:
        findings.append(
            error(
                "MANIFEST_WRONG_KIND",
                "kind",
                f"kind is {json.dumps(obj.get('kind'))}, not {render.KIND}.",
                f"Paste a {render.KIND}.",
            )
        )
    if obj.get("apiVersion") != render.API_VERSION:
        findings.append(
            error(
                "MANIFEST_WRONG_API_VERSION",
                "apiVersion",
                f"apiVersion is {json.dumps(obj.get('apiVersion'))}, not {render.API_VERSION}.",
                f"Use apiVersion: {render.API_VERSION}.",
            )
        )
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        findings.append(
            error(
                "MANIFEST_NO_NAME",
                "name",
                "metadata.name is missing.",
                "Give the NAD a name under metadata.",
            )
        )
    spec = obj.get("spec")
    config = spec.get("config") if isinstance(spec, dict) else None
    if config is not None and not isinstance(config, str):
        findings.append(
            error(
                "MANIFEST_CONFIG_NOT_STRING",
                "config",
                f"spec.config is a YAML {type(config).__name__}, but it must be a JSON string: "
                "the API server rejects the object.",
                "Write `config: |` and the JSON below it, indented.",
            )
        )
    elif not config or not config.strip():
        name = metadata.get("name", "") if isinstance(metadata, dict) else ""
        findings.append(config_empty(name))
    if any(f.severity == ERROR for f in findings):
        return None, findings
    return obj, findings


def lint_manifest(text: str, **inventory: Any) -> list[Finding]:
    """parse_manifest + lint. `inventory` takes lint's devices_by_node, plugins_by_node and
    multus_version."""
    obj, findings = parse_manifest(text)
    if obj is None:
        return findings
    metadata = obj["metadata"]
    annotations = {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}
    linted = lint(
        namespace=str(metadata.get("namespace") or "default"),
        name=metadata["name"],
        config=(obj.get("spec") or {}).get("config") or "",
        annotations=annotations,
        **inventory,
    )
    seen = {f.code for f in findings}
    return findings + [f for f in linted if f.code not in seen]
