"""`benchmarks/cause_judge.py`: how the contact models judge two-segment causes."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_script_judges_every_search_and_the_simulators_pick_makes_the_most(tiny_model, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cause_judge.py"), "--model", str(tiny_model),
                           "--fit-states", "1", "--states", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "cause_judge.json").read_text())
    searches = ("cem", "cem_bias_corrected", "cem_under_errors", "family_pick", "family_best")
    for search in searches:
        for name in ("cause_makes_poke_share", "cause_judged_makes_poke_share"):
            assert 0.0 <= result[search][name] <= 1.0
        assert result[search]["cause_judged_end_error_px"] >= 0.0
    # The simulator's best of the family makes every poke some push of the family makes, so
    # no pick from the same family makes more.
    assert result["family_best"]["cause_makes_poke_share"] >= result["family_pick"]["cause_makes_poke_share"]
    # One row per shaped push of every poke: 8 directions x 64 pushes, each in one bin.
    assert result["fit_pushes"] == 8 * 64
    for member in result["bias_px"]:
        assert sum(member["measured"]) == result["fit_pushes"] and member["along"][:3] == [0.0, 0.0, 0.0]
