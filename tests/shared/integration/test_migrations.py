"""Each service's Alembic history produces exactly the tables its models describe."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import shared.messaging  # noqa: F401 - registers the inbox and outbox tables
from shared.tools.migrate import SERVICES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models(infra, service: str) -> None:  # type: ignore[no-untyped-def]
    # every table model of the service's db package (db/models.py and any other module beside it)
    package = importlib.import_module(f"services.{service}.db")
    modules = [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    own = {cls.__tablename__ for module in modules for cls in vars(module).values()
           if isinstance(cls, type) and issubclass(cls, SQLModel) and hasattr(cls, "__table__")}
    own |= {"inbox", "outbox"}
    def belongs(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in own

    async def diff() -> list[object]:
        async_engine = create_async_engine(infra.database_url,
                                           connect_args={"server_settings": {"search_path": service}})
        try:
            async with async_engine.connect() as conn:
                return await conn.run_sync(lambda sync_conn: compare_metadata(MigrationContext.configure(
                    sync_conn, opts={"include_object": belongs, "compare_type": False}), SQLModel.metadata))
        finally:
            await async_engine.dispose()

    assert asyncio.run(diff()) == []
