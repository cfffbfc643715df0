"""The public face: ``aifdata.__all__`` is sorted, complete and importable."""

from __future__ import annotations

import inspect

import fsspec

import aifdata


def test_all_is_sorted_and_unique():
    assert list(aifdata.__all__) == sorted(set(aifdata.__all__))


def test_all_names_exist():
    for name in aifdata.__all__:
        assert hasattr(aifdata, name), name


def test_every_public_class_and_function_is_exported():
    public = {
        name
        for name, value in vars(aifdata).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public <= set(aifdata.__all__)


def test_errors_keep_their_builtin_meaning():
    assert issubclass(aifdata.NotFound, FileNotFoundError)
    assert issubclass(aifdata.AccessDenied, PermissionError)
    assert issubclass(aifdata.PathEscape, PermissionError)
    assert issubclass(aifdata.FormatError, ValueError)
    assert issubclass(aifdata.ConfigError, ValueError)
    assert issubclass(aifdata.StorageUnavailable, ConnectionError)


def test_aif_protocol_is_registered_through_entry_points():
    assert fsspec.get_filesystem_class("aif") is aifdata.AifFileSystem
