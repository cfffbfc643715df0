"""Test helpers that ship with aifdata, for connectors written anywhere.

:class:`ConnectorTests` is the contract of a :class:`~aifdata.connectors.Connector`
written as a pytest test class: a connector's test module subclasses it and
provides a fresh, empty :class:`~aifdata.Tier`; every test of the class then
runs against that connector.

Importing this package needs pytest (a test dependency of aifdata, never a
runtime one); ``import aifdata`` does not import it.
"""

from __future__ import annotations

import pytest

# The suite's asserts explain their failures the way a test module's do.
pytest.register_assert_rewrite("aifdata.testing._connector", "aifdata.testing._escapes")

from ._connector import ConnectorTests  # noqa: E402

__all__ = ["ConnectorTests"]
