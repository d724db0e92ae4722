"""Fixtures of the evaluation tests (helpers live in evaluation_testkit.py)."""

import pytest
from evaluation_testkit import FIXTURES


@pytest.fixture
def fixture_data(monkeypatch):
    """Point every r1 task at the shipped offline fixtures."""
    monkeypatch.setenv("MLR1_EVAL_DATA_DIR", str(FIXTURES))
    return FIXTURES
