"""Small typed readers for configuration from the environment.

Each fails loudly (ImproperlyConfigured naming the variable) on a value it cannot parse, so a typo
in a deployment stops the process at start-up instead of running with a silent default.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str = "", *, missing_file_ok: bool = False) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Kubernetes/compose secrets).
    missing_file_ok: a NAME_FILE that does not exist reads as unset (a key of a mounted Secret
    that is only there some of the time)."""
    file_var = f"{name}_FILE"
    path = os.environ.get(file_var)
    if path:
        if missing_file_ok and not Path(path).exists():
            return default
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{file_var}={path!r} cannot be read: {exc}") from None
    return os.environ.get(name, default)


# Values that ship in this repository's templates and examples, or that people type when told
# to "put a secret here". None of them is a secret: under NICPORTAL_PRODUCTION=1 they stop the
# process (see production_secret).
PLACEHOLDER_MARKERS = ("replace_me", "replace-me", "changeme", "change_me", "change-me")
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production"
# Fewer distinct characters than this is a pattern, not a random value ("aaaa…", "0000…").
MIN_DISTINCT_CHARACTERS = 8


def secret_source(name: str) -> str:
    """How to name a secret in a message: NAME, or NAME_FILE=path when it came from a file."""
    path = os.environ.get(f"{name}_FILE")
    return f"{name} (read from {name}_FILE={path})" if path else name


def production_secret(name: str, value: str, *, min_length: int, required: bool = True) -> str:
    """Return `value` if it can be a production secret; otherwise ImproperlyConfigured naming the
    variable (never echoing the value): unset (when required), a known placeholder, the
    development key, shorter than `min_length`, or too few distinct characters."""
    source = secret_source(name)
    advice = (
        f"set {name} (or {name}_FILE) to a random value of {min_length}+ characters, e.g. "
        f"python3 -c 'import secrets; print(secrets.token_urlsafe({max(min_length, 32)}))'"
    )
    if not value:
        if required:
            raise ImproperlyConfigured(f"{source} must be set in production: {advice}")
        return value
    lowered = value.lower()
    marker = next((m for m in PLACEHOLDER_MARKERS if m in lowered), None)
    if marker is not None:
        raise ImproperlyConfigured(
            f"{source} is a placeholder (it contains {marker.upper()!r}): {advice}"
        )
    if value == DEVELOPMENT_SECRET_KEY:
        raise ImproperlyConfigured(f"{source} is the development key: {advice}")
    if len(value) < min_length:
        raise ImproperlyConfigured(
            f"{source} is too short ({len(value)} characters, at least {min_length}): {advice}"
        )
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        raise ImproperlyConfigured(
            f"{source} is not random (fewer than {MIN_DISTINCT_CHARACTERS} distinct "
            f"characters): {advice}"
        )
    return value
