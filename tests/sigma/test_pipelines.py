"""The built-in pipeline on events from the real parsers: SigmaHQ vendor field names reach the vendor
namespace, ECS rules need nothing, routing keeps rules on their datasets. Plus Sigma filters and user
pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from temporal_siem.detections.factory import new_detector
from temporal_siem.detections.sigma import SigmaEngine
from temporal_siem.detections.sigma.pipelines import PipelineError
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.parsers.router import ParserRouter

ROOT = Path(__file__).resolve().parents[2]


def parsed(*paths: str) -> list[dict[str, Any]]:
    router = ParserRouter("auto", 8 * 1024 * 1024)
    events: list[dict[str, Any]] = []
    for batch in ReplaySource([str(ROOT / p) for p in paths]).batches():
        for record in batch:
            events.extend(router.parse(record).events)
    return events


OKTA_SIGMAHQ = """
title: Okta SSO via IdP failed (SigmaHQ spelling)
id: 1d0c8b9e-0000-4000-8000-0000000000a1
logsource: {product: okta, service: okta}
detection:
  selection:
    eventtype: user.authentication.auth_via_IDP
    outcome.result: FAILURE
    client.ipAddress|cidr: 203.0.113.0/24
  condition: selection
level: medium
---
title: Okta SSO via IdP failed (ECS names)
id: 1d0c8b9e-0000-4000-8000-0000000000a2
logsource: {product: okta}
detection:
  selection:
    event.action: user.authentication.auth_via_IDP
    event.outcome: failure
  condition: selection
level: medium
---
title: KMS key administration (SigmaHQ CloudTrail spelling)
id: 1d0c8b9e-0000-4000-8000-0000000000a3
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventSource: kms.amazonaws.com
    userIdentity.type: IAMUser
  condition: selection
level: low
"""


def test_sigmahq_vendor_names_and_ecs_names_on_parsed_events() -> None:
    engine = SigmaEngine.from_yaml(OKTA_SIGMAHQ)
    assert not engine.errors
    fields = {r.meta.title: r.fields for r in engine.ruleset.rules}
    assert fields["Okta SSO via IdP failed (SigmaHQ spelling)"] == (
        "okta.eventType", "okta.outcome.result", "okta.client.ipAddress")
    events = parsed("samples/okta", "samples/aws_cloudtrail")
    hits: dict[str, int] = {}
    for event in events:
        for match in engine.match(event):
            hits[match.title] = hits.get(match.title, 0) + 1
    assert hits.get("Okta SSO via IdP failed (SigmaHQ spelling)", 0) >= 1
    assert hits["Okta SSO via IdP failed (ECS names)"] >= hits["Okta SSO via IdP failed (SigmaHQ spelling)"]
    assert hits.get("KMS key administration (SigmaHQ CloudTrail spelling)", 0) >= 1
    # routing: the CloudTrail rule never ran on an okta event and vice versa
    okta_only = [e for e in events if e.get("event.dataset") == "okta.system"]
    assert all(m.title.startswith("Okta") for e in okta_only for m in engine.match(e))


FILTER = """
title: Ignore the break-glass account
filter:
  rules: [1d0c8b9e-0000-4000-8000-0000000000b1]
  selection:
    user.name: breakglass
  condition: not selection
logsource: {product: okta}
"""

BASE = """
title: Okta admin role granted
id: 1d0c8b9e-0000-4000-8000-0000000000b1
logsource: {product: okta}
detection:
  selection:
    event.action: user.account.privilege.grant
  condition: selection
level: high
"""


def test_sigma_filter_applies_without_editing_the_rule(tmp_path: Path) -> None:
    rules, filters = tmp_path / "rules", tmp_path / "filters"
    rules.mkdir()
    filters.mkdir()
    (rules / "base.yml").write_text(BASE)
    (filters / "f.yml").write_text(FILTER)
    event = {"event.dataset": "okta.system", "event.action": "user.account.privilege.grant", "user.name": "alice"}
    unfiltered = Ruleset.from_paths([rules], builtin_rules=False)
    filtered = Ruleset.from_paths([rules], builtin_rules=False, filters=[filters])
    assert not filtered.errors
    assert unfiltered.match_indices({**event, "user.name": "breakglass"}) == [0]
    assert filtered.match_indices({**event, "user.name": "breakglass"}) == []
    assert filtered.match_indices(event) == [0]


def test_user_pipeline_routes_a_custom_logsource(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("""
name: my firewall
priority: 30
transformations:
  - type: set_custom_attribute
    attribute: tsiem.dataset
    value: [acme.firewall]
    rule_conditions: [{type: logsource, product: acme}]
  - type: field_name_mapping
    mapping: {src: source.ip}
    rule_conditions: [{type: logsource, product: acme}]
""")
    rule = """
title: Acme deny from a bad net
id: 1d0c8b9e-0000-4000-8000-0000000000c1
logsource: {product: acme}
detection:
  selection:
    src|cidr: 198.51.100.0/24
  condition: selection
"""
    engine = SigmaEngine.from_yaml(rule, pipelines=[pipeline])
    assert engine.ruleset.rules[0].datasets == ("acme.firewall",)
    assert engine.match({"event.dataset": "acme.firewall", "source.ip": "198.51.100.7"})
    assert not engine.match({"event.dataset": "json", "source.ip": "198.51.100.7"})  # routed away from json


def test_broken_pipeline_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("transformations: [{type: no_such_transformation}]\n")
    with pytest.raises(PipelineError, match=r"bad\.yml"):
        Ruleset.from_paths([], builtin_rules=False, pipelines=[bad])


def test_windows_logsource_tags_prune_on_conflict() -> None:
    rules = """
title: Image in a file event
id: 1d0c8b9e-0000-4000-8000-0000000000d1
logsource: {product: windows, category: file_event}
detection:
  selection:
    Image|endswith: '\\\\cmd.exe'
  condition: selection
---
title: Image in a process creation
id: 1d0c8b9e-0000-4000-8000-0000000000d2
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\\\\cmd.exe'
  condition: selection
"""
    engine = SigmaEngine.from_yaml(rules)
    sysmon = "Microsoft-Windows-Sysmon/Operational"
    titles = [m.title for m in engine.match({"Channel": sysmon, "EventID": 1, "Image": "C:\\x\\cmd.exe"})]
    assert titles == ["Image in a process creation"]
    titles = [m.title for m in engine.match({"Channel": sysmon, "EventID": "11", "Image": "C:\\x\\cmd.exe"})]
    assert titles == ["Image in a file event"]
    # untagged (no Channel): fail open, both run
    assert len(engine.match({"Image": "C:\\x\\cmd.exe"})) == 2


def test_wrapped_windows_events_get_plain_sigma_names() -> None:
    rule = """
title: Whoami by SYSTEM
id: 1d0c8b9e-0000-4000-8000-0000000000e1
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\\\\whoami.exe'
    SubjectUserSid: S-1-5-18
  condition: selection
"""
    engine = SigmaEngine.from_yaml(rule)
    evtx = {"Event": {"System": {"EventID": {"#text": 4688}, "Channel": "Security",
                                 "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}},
                      "EventData": {"Data": [{"#attributes": {"Name": "SubjectUserSid"}, "#text": "S-1-5-18"},
                                             {"#attributes": {"Name": "NewProcessName"}, "#text": "C:\\w\\whoami.exe"}],
                                    "Image": "C:\\Windows\\System32\\whoami.exe"}}}
    assert [m.title for m in engine.match(evtx)] == ["Whoami by SYSTEM"]
    winlogbeat = {"winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1,
                             "event_data": {"Image": "C:\\w\\WHOAMI.EXE", "SubjectUserSid": "S-1-5-18"}}}
    assert engine.match(winlogbeat)
    # the tag still applies: a Sysmon file event of the same shape is not a process creation
    winlogbeat["winlog"]["event_id"] = 11
    assert not engine.match(winlogbeat)
    # alerts keep the event as it came
    detector = new_detector(engine.ruleset)
    alerts = detector.process([{"event.id": "1", "Event.System.Channel": "Security", "Event.System.EventID": 4688,
                                "Event.EventData.Image": "c:\\whoami.exe", "Event.EventData.SubjectUserSid": "S-1-5-18"}])
    assert len(alerts) == 1 and "Image" not in alerts[0]


def test_security_4688_names_alias_sysmon_names() -> None:
    rule = """
title: cmd from office
id: 1d0c8b9e-0000-4000-8000-0000000000e2
logsource: {product: windows, category: process_creation}
detection:
  selection:
    ParentImage|endswith: '\\\\winword.exe'
    Image|endswith: '\\\\cmd.exe'
  condition: selection
"""
    engine = SigmaEngine.from_yaml(rule)
    event = {"Channel": "Security", "EventID": 4688, "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
             "ParentProcessName": "C:\\Program Files\\Office\\WINWORD.EXE"}
    assert engine.match(event)
    assert not engine.match({**event, "EventID": 4624})  # tagged: not a process creation


DEFENDER_RULE = """
title: Defender flagged a tiering engine dropped by RedSun
id: 1d0c8b9e-0000-4000-8000-0000000000e3
logsource: {product: windows, service: windefend}
detection:
  selection_eid:
    EventID: 1119
    SourceName: 'Real-Time Protection'
  selection_path:
    Path|endswith: '\\\\TieringEngineService.exe'
    ThreatName|endswith: 'EICAR_Test_File'
  condition: selection_eid and selection_path
"""


def _defender_evtx(data: dict[str, Any]) -> dict[str, Any]:
    return {"Event": {"System": {"EventID": 1119, "Channel": "Microsoft-Windows-Windows Defender/Operational",
                                 "Provider": {"#attributes": {"Name": "Microsoft-Windows-Windows Defender"}}},
                      "EventData": data}}


def test_event_data_names_with_spaces_are_matched_by_their_sigma_names() -> None:
    """Sigma names a Windows field as the event shows it with its spaces removed ("Threat Name" -> ThreatName,
    the rules specification's field usage), as SigmaHQ's Defender rules and their regression samples (evtx_dump
    JSON) do; the original names stay for rules written with them."""
    engine = SigmaEngine.from_yaml(DEFENDER_RULE)
    data = {"Source Name": "Real-Time Protection", "Threat Name": "Tool:Win32/EICAR_Test_File",
            "Path": "file:_C:\\Users\\x\\AppData\\Local\\Temp\\RS-1\\TieringEngineService.exe"}
    assert [m.title for m in engine.match(_defender_evtx(data))] == ["Defender flagged a tiering engine dropped by RedSun"]
    assert not engine.match(_defender_evtx({**data, "Threat Name": "Trojan:Win32/Other"}))
    as_pairs = {"Data": [{"#attributes": {"Name": k}, "#text": v} for k, v in data.items()]}
    assert engine.match(_defender_evtx(as_pairs))
    winlogbeat = {"winlog": {"channel": "Microsoft-Windows-Windows Defender/Operational", "event_id": 1119,
                             "event_data": data}}
    assert engine.match(winlogbeat)
    spaced = SigmaEngine.from_yaml(DEFENDER_RULE.replace("ThreatName|endswith", "'Threat Name|endswith'").replace("    SourceName:", "    'Source Name':"))
    assert spaced.match(_defender_evtx(data))
