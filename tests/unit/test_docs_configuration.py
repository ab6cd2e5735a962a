"""docs/configuration.md documents exactly the settings the three services read.

Every field of :class:`~webhook.settings.WebhookSettings`,
:class:`~extender.settings.ExtenderSettings` and
:class:`~provisioner.settings.ProvisionerSettings` must have a table row whose
first cell is its variable (``SPOTPACK_<SERVICE>_<FIELD>``) and whose default
cell is its default, written as below; every ``SPOTPACK_<SERVICE>_*`` name on
the page must be a real variable. A new field, a renamed one or a changed
default fails here until the page says so.
"""

from __future__ import annotations

import enum
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from extender.settings import ExtenderSettings
from provisioner.settings import ProvisionerSettings
from webhook.settings import WebhookSettings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SERVICES: dict[str, type[BaseSettings]] = {
    "SPOTPACK_WEBHOOK_": WebhookSettings,
    "SPOTPACK_EXTENDER_": ExtenderSettings,
    "SPOTPACK_PROVISIONER_": ProvisionerSettings,
}
DYNAMIC_DEFAULTS = {"SPOTPACK_PROVISIONER_IDENTITY": "<hostname>-<pid>"}
"""Defaults computed at start; the page shows their shape."""

ROW = re.compile(r"^\|\s*`(SPOTPACK_[A-Z0-9_]+)`\s*\|([^|]*)\|\s*`([^`]*)`\s*\|([^|]+)\|\s*$")
NAME = re.compile(r"SPOTPACK_(?:WEBHOOK|EXTENDER|PROVISIONER)_[A-Z][A-Z0-9_]*[A-Z0-9]")


def render(value: Any) -> str:
    """A default as the page writes it: what one would put in the variable."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dict | list):
        plain = json.loads(json.dumps(value, default=lambda v: v.value))
        return json.dumps(plain, separators=(", ", ": "))
    if value == "":
        return '""'
    return str(value)


def documented() -> dict[str, tuple[str, str, str]]:
    """Variable -> (type, default, meaning) from the page's table rows."""
    rows: dict[str, tuple[str, str, str]] = {}
    for line in PAGE.read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, kind, default, meaning = match.groups()
            assert name not in rows, f"{name} is documented twice"
            rows[name] = (kind.strip(), default, meaning.strip())
    return rows


def fields() -> list[tuple[str, str, Any]]:
    out = []
    for prefix, cls in SERVICES.items():
        assert cls.model_config.get("env_prefix") == prefix
        for name, info in cls.model_fields.items():
            out.append((prefix + name.upper(), name, info.get_default(call_default_factory=True)))
    return out


PARAMS = [
    pytest.param(variable, field, default, id=variable) for variable, field, default in fields()
]


@pytest.mark.parametrize(("variable", "field", "default"), PARAMS)
def test_every_setting_is_documented_with_its_default(
    variable: str, field: str, default: Any
) -> None:
    rows = documented()
    assert variable in rows, f"docs/configuration.md has no row for {variable}"
    kind, shown, meaning = rows[variable]
    assert kind and meaning, f"{variable}: type and meaning must be filled in"
    expected = DYNAMIC_DEFAULTS.get(variable, render(default))
    assert shown == expected, f"{variable}: the page says {shown!r}, the code {expected!r}"


def test_no_unknown_variable_is_documented() -> None:
    known = {variable for variable, _, _ in fields()}
    named = set(NAME.findall(PAGE.read_text()))
    assert named - known == set()
    assert set(documented()) == known


@pytest.mark.parametrize(("variable", "field", "default"), PARAMS)
def test_documented_default_read_back_from_the_environment(
    variable: str, field: str, default: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's default, put in the variable, is read as the default: the syntax is right."""
    if variable in DYNAMIC_DEFAULTS or default is None:
        return
    text = render(default)
    monkeypatch.setenv(variable, "" if text == '""' else text)
    settings = SERVICES[variable[: -len(field)]]()
    assert getattr(settings, field) == default
