"""Shared fixtures: small configs and a temporary cache so tests never touch ~/.cache."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in every test, as in a terminal. A test run started in
    the background by a non-interactive shell (``cmd &``, as CI scripts may) inherits SIGINT
    ignored, and the tests that press Ctrl-C on themselves would wait forever for it."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True)
def _threads():
    # CI machines have 2 cores; more threads than cores only adds contention
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def one_thread(_threads):
    """One torch thread and denormals kept (training flushes them; hypothesis needs them):
    tiny networks run fastest on one thread, and two threads on a shared 2-core machine can be
    10x slower (OpenMP barriers). Restored afterwards. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(False)
    yield
    torch.set_num_threads(before)
    torch.set_flush_denormal(False)


def _untracked() -> set[str] | None:
    """Files in the repository that git neither tracks nor ignores (None: not a git checkout)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(out.stdout.splitlines()) if out.returncode == 0 else None


@pytest.fixture(scope="session", autouse=True)
def _repository_left_clean():
    """No test may write into the repository (a relative --out lands in the working folder:
    tests that run commands work in tmp_path)."""
    before = _untracked()
    yield
    after = _untracked()
    if before is not None and after is not None and after - before:
        pytest.fail(f"tests left files in the repository: {sorted(after - before)[:10]}")
