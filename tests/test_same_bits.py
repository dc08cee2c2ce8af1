"""benchmarks/same_bits.py, which backs the README's "the same bits as before", can tell a change.

Run only this with: pytest tests/test_same_bits.py (or pytest -m train)
"""
import importlib.util
import pathlib
import re
import shutil

import pytest

pytestmark = pytest.mark.train

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_same_bits():
    spec = importlib.util.spec_from_file_location("same_bits", REPO / "benchmarks" / "same_bits.py")
    same_bits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(same_bits)
    return same_bits


def test_same_bits_tells_an_unchanged_package_from_a_changed_one(tmp_path, capsys):
    same_bits = load_same_bits()
    n = 2 * len(same_bits.VARIANTS) + len(same_bits.SMALL_MODELS)      # every GPT variant twice, the small models
    code = same_bits.main(["--code", str(REPO), "--steps", "1"])
    out = capsys.readouterr().out
    assert code == 0 and f"0 of {n} variants differ" in out, f"this checkout against itself (exit {code}):\n{out}"
    shutil.copytree(REPO / "minirev", tmp_path / "minirev", ignore=shutil.ignore_patterns("__pycache__"))
    optim = tmp_path / "minirev" / "optim.py"
    optim.write_text(optim.read_text().replace("eps=1e-8", "eps=1.1e-8"))     # a change of AdamW's eps
    code = same_bits.main(["--code", str(tmp_path), "--steps", "1"])
    out = capsys.readouterr().out
    assert code == 1 and f"{n} of {n} variants differ" in out, f"AdamW's eps changed (exit {code}):\n{out}"
    summary = re.findall(r"\d+ of \d+ variants differ", out)
    assert summary == [f"{n} of {n} variants differ"], f"one summary line expected: {summary}"
