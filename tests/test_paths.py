"""Logical paths have one spelling and no way out."""

from __future__ import annotations

import pytest

from aifdata import PathEscape
from aifdata._paths import clean_path


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("aif://local/a/b", "local/a/b"),
        ("local//a/./b/", "local/a/b"),
        ("/local/a", "local/a"),
        ("aif://", ""),
        ("local/100%25.txt", "local/100%25.txt"),
    ],
)
def test_spellings_collapse(raw, clean):
    assert clean_path(raw) == clean


@pytest.mark.parametrize(
    "raw",
    [
        "local/../etc/passwd",
        "local/a/../../x",
        "aif:///etc/passwd",
        "local/%2e%2e/secret",
        "local/%2E%2E/secret",
        "local/.%2e/secret",
        "local/a%2f..%2fb",
        "local/a\\..\\b",
        "local/a\x00b",
    ],
)
def test_escapes_are_refused(raw):
    with pytest.raises(PathEscape) as info:
        clean_path(raw)
    assert isinstance(info.value, PermissionError)
