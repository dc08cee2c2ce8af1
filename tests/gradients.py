"""The one gradient assertion every test file uses.

    assert_gradients_match(check_model(model, tokens, out=None), "gpt pos=rotary")

A failing assertion names each parameter whose hand-written gradient disagrees
with autograd, and by how much (relative error: 1/3 is a missing factor of 2,
1 a wrong sign, 0.2 to 0.7 a transposed matrix).
"""
from minirev.gradcheck import DEFAULT_TOL as TOL  # noqa: E402  (one bound: the command line's --tol default)


def assert_gradients_match(result, what):
    ok, rows = result
    bad = [f"{r['name']} rel.err {r['rel_error']:.1e}" for r in rows if not r["ok"]]
    assert ok, f"{what}: hand-written backward disagrees with autograd for {', '.join(bad)}"
