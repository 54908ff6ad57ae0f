"""Small tensor edits shared by the input-check tests."""


def with_value(t, pos, value):
    t = t.clone()
    t[pos] = value
    return t
