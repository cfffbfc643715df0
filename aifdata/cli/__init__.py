"""The ``aifdata`` command line.

:mod:`._app` holds the application and its global options and imports no
command module; each command module registers its commands on it when
imported here, in the order ``aifdata --help`` lists them.
"""

from ._app import app, main

# isort: off
from . import _files, _catalog, _convert, _demo, _formats, _lineage, _policy, _verify  # noqa: F401
from . import _catalog_admin, _prefetch, _release, _stats, _sync  # noqa: F401
from . import _refs, _serve, _mcp  # noqa: F401
# isort: on

__all__ = ["app", "main"]
