"""Fixtures of the evaluation tests (helpers live in eval_support.py)."""

import pytest

from eval_support import FIXTURES


@pytest.fixture
def fixture_data(monkeypatch):
    """Point every r1 task at the shipped offline fixtures."""
    monkeypatch.setenv("MLR1_EVAL_DATA_DIR", str(FIXTURES))
    return FIXTURES
