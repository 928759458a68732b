"""Messages for users: sentences joined into one paragraph."""

import pytest

from invkit.errors import join_sentences, sentence


@pytest.mark.parametrize("text,expected", [
    ("rename one of them.", "rename one of them."),
    ("No module named 'scipy'", "No module named 'scipy'."),
    ("Did you mean 'gmm'?", "Did you mean 'gmm'?"),
    ("invalid syntax (plugin.py, line 3)", "invalid syntax (plugin.py, line 3)."),
    ("two\n  lines:\n", "two lines."),
    ("", ""),
])
def test_sentence_ends_in_one_full_stop(text, expected):
    assert sentence(text) == expected


def test_join_never_doubles_the_full_stop():
    joined = join_sentences("Unknown problem 'x'", "Plugin 'a' failed to load: so rename one "
                            "of them.", "", ValueError("boom."))
    assert joined == ("Unknown problem 'x'. Plugin 'a' failed to load: so rename one of them. "
                      "boom.")
    assert ".." not in joined
