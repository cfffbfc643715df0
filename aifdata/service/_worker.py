"""The application each process of ``aifdata serve --workers N`` builds: uvicorn starts the
processes and imports :func:`app` by name in each. ``aifdata serve`` has already opened the
catalog and read the settings; it passes both on in the environment
(``$AIFDATA_CATALOG``, ``$AIFDATA_CONFIG``), as it would to any other aifdata process."""

from __future__ import annotations

from starlette.applications import Starlette

from .._config import load_config
from ..catalog import Catalog
from ._app import build_app
from ._settings import ServiceSettings
from ._web import WEB_ROUTES


def app() -> Starlette:
    """The service's application over the catalog and mount table the environment names."""
    config = load_config()
    catalog = Catalog(config=config)
    settings = ServiceSettings.from_config(config)
    return build_app(catalog, settings, extra_routes=WEB_ROUTES, mcp=True)
