"""Renamed arguments: the old name works with a warning naming the new one, for one release."""

import pytest

from pyro_frmdn.deprecation import refuse_unknown, renamed


def test_the_old_name_gives_its_value_with_a_warning_and_is_consumed():
    kwargs = {"num_layers": 3, "other": 1}
    with pytest.warns(FutureWarning, match=r"f: num_layers= is deprecated .* use flow_layers="):
        assert renamed("f", kwargs, "num_layers", "flow_layers", None) == 3
    assert kwargs == {"other": 1}


def test_without_the_old_name_the_new_value_stands_and_both_is_an_error():
    assert renamed("f", {}, "num_layers", "flow_layers", 7) == 7
    assert renamed("f", {}, "num_layers", "flow_layers") is None
    with pytest.raises(TypeError, match="f got both num_layers= and flow_layers="):
        renamed("f", {"num_layers": 3}, "num_layers", "flow_layers", 2)


def test_unknown_keywords_are_refused_by_name():
    refuse_unknown("f", {})
    with pytest.raises(TypeError, match=r"f got unexpected keyword arguments \['a', 'b'\]"):
        refuse_unknown("f", {"b": 1, "a": 2})
