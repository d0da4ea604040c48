"""One service registry: settings, migrations and the local stack read it."""

from __future__ import annotations

import importlib

import pytest

from devstack.stack import SERVICES as STACK_SERVICES
from devstack.stack import Ports
from shared import registry
from shared.tools import migrate


def test_names_ports_and_prefixes_are_unique() -> None:
    assert len({s.name for s in registry.SERVICES}) == len(registry.SERVICES)
    assert len({s.port for s in registry.SERVICES}) == len(registry.SERVICES)
    assert [s.env_prefix for s in registry.SERVICES] == [f"{s.name.upper()}_" for s in registry.SERVICES]


def test_unknown_service_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown service 'schedular'; expected one of segmentation"):
        registry.spec("schedular")


@pytest.mark.parametrize("spec", registry.SERVICES, ids=lambda s: s.name)
def test_each_service_settings_follow_the_registry(spec: registry.ServiceSpec,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    settings_cls = importlib.import_module(f"{spec.module}.settings").Settings
    monkeypatch.delenv(f"{spec.env_prefix}PORT", raising=False)
    settings = settings_cls()
    assert settings.port == spec.port
    assert settings.schema_name == spec.schema == spec.name
    assert settings.consumer_group == spec.consumer_group
    assert settings.spec.source == f"urn:gentle-collections:{spec.name}"
    monkeypatch.setenv(f"{spec.env_prefix}PORT", "9999")
    assert settings_cls().port == 9999


def test_migrations_and_local_stack_use_the_registry() -> None:
    assert migrate.SERVICES == registry.NAMES == STACK_SERVICES
    assert Ports().services == {s.name: s.port for s in registry.SERVICES}
    free = Ports.free()
    assert set(free.services) == set(registry.NAMES)
    assert free.of("scheduler") == free.services["scheduler"]
    with pytest.raises(ValueError, match="unknown service"):
        migrate.alembic_config("nope", "postgresql://x/y")
