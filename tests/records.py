"""One helper for the assertion messages of every test file that compares lists of records.

    assert a == b, first_difference(a, b)      # "record 3: val_nll 4.1 vs 4.2"
"""


def first_difference(a, b, what="record"):
    """Where two lists of records (dicts: histories, result rows) first differ, for an assertion message."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            keys = sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k))
            return f"{what} {i}: " + ", ".join(f"{k} {x.get(k)!r} vs {y.get(k)!r}" for k in keys)
    return f"{len(a)} {what}s vs {len(b)}"
