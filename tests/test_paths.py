import pytest

from invkit.errors import InvkitError
from invkit.paths import user_path


def test_home_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_path("~/sims.npz") == tmp_path / "sims.npz"
    assert str(user_path("plain/sims.npz")) == "plain/sims.npz"


def test_an_unknown_user_is_an_error_that_says_what_to_do():
    with pytest.raises(InvkitError, match="no home directory is known for '~nosuchuser0'.*in full"):
        user_path("~nosuchuser0/sims.npz")
