"""The examples of docs/guide/simulators.md run, in a fresh folder, and print what the page
shows (the same check as the docs' doctest build, without building the docs)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "simulators.md"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1


def _blocks() -> str:
    return "\n".join(re.findall(r"```\{doctest\}\n(.*?)```", PAGE.read_text(), flags=re.S))


def test_every_example_on_the_simulators_page_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = _blocks()
    assert source.count(">>>") > 40
    test = doctest.DocTestParser().get_doctest(source, {}, PAGE.name, str(PAGE), 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out: list[str] = []
    runner.run(test, out=out.append)
    if runner.failures:
        pytest.fail("".join(out))
