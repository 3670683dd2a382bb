"""`shown_warnings`: how `qa` and a background execution's driver show the user's warnings."""

from __future__ import annotations

import warnings

from qaflow.errors import QaflowWarning, shown_warnings


def test_user_warnings_are_said_each_time_and_others_shown_as_python_does(capsys):
    said: list[str] = []
    original = warnings.showwarning
    with shown_warnings(said.append):
        warnings.simplefilter("always", DeprecationWarning)  # pytest makes it an error
        for _ in range(2):  # the same warning twice: said twice (a file is read again)
            warnings.warn("unknown key `colour` is ignored.", QaflowWarning, stacklevel=1)
        warnings.warn("something else", DeprecationWarning, stacklevel=1)
    assert said == ["warning: unknown key `colour` is ignored."] * 2
    err = capsys.readouterr().err
    assert "DeprecationWarning: something else" in err and "colour" not in err
    assert warnings.showwarning is original  # restored on leaving
