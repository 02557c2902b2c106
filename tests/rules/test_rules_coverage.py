"""``rules coverage --navigator``: an ATT&CK Navigator layer of what the rule pack's tags cover."""

from __future__ import annotations

import json

from temporal_siem.commands.rules_coverage import TACTICS, coverage, navigator_layer
from temporal_siem.detections.sigma.ruleset import Ruleset
from tests.app.test_cli import run


def test_coverage_maps_techniques_to_the_tactics_of_the_same_rule() -> None:
    cov = coverage([("a", "Rule A", ("attack.credential_access", "attack.t1552.001")),
                    ("b", "Rule B", ("attack.t1552.001", "attack.impact", "attack.t1485")),
                    ("c", "Rule C", ("attack.t1078",)), ("d", "Untagged", ("temporal.audit",))])
    assert cov["T1552.001"] == {"credential-access": ["Rule A"], "impact": ["Rule B"]}
    assert cov["T1485"] == {"impact": ["Rule B"]}
    assert cov["T1078"] == {"": ["Rule C"]}
    assert set(cov) == {"T1552.001", "T1485", "T1078"}


def test_navigator_layer_from_the_cli_covers_every_tagged_technique(tmp_path) -> None:
    path = tmp_path / "layer.json"
    result = run("rules", "coverage", "--navigator", str(path))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    layer = json.loads(path.read_text())
    assert layer["domain"] == "enterprise-attack" and layer["versions"]["layer"] == "4.5"
    ruleset = Ruleset.from_paths([], builtin_rules=True)
    tagged = {t.split(".", 1)[1].upper() for r in ruleset.rules for t in r.meta.tags if t.lower().startswith("attack.t")}
    assert tagged and {t["techniqueID"] for t in layer["techniques"]} >= tagged
    for technique in layer["techniques"]:
        assert technique["score"] >= 1 and technique["comment"]
        assert technique.get("tactic", "credential-access") in TACTICS
    assert navigator_layer({})["techniques"] == []
