"""Seeded event generators for the differential tests and bench/engine_bench.py.

``rule_events`` builds events aimed at one rule: every value the rule names, with wildcards filled, case
flipped and the needle at the start/middle/end of the value (hits), plus near misses (one character
changed, a field dropped). ``windows_events`` builds Windows/Sysmon-shaped flat events for throughput.
"""

from __future__ import annotations

import random
from typing import Any

from sigma.conditions import ConditionFieldEqualsValueExpression, ConditionItem, ConditionValueExpression
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

FILLER = "abcXYZ019 \\/-_.:"


def _flip_case(rng: random.Random, text: str) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


def _string_value(rng: random.Random, value: SigmaString) -> str:
    out = []
    for part in value.s:
        if isinstance(part, str):
            out.append(_flip_case(rng, part) if rng.random() < 0.7 else part)
        elif part is SpecialChars.WILDCARD_MULTI:
            out.append("".join(rng.choice(FILLER) for _ in range(rng.choice((0, 1, 3, 12)))))
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(rng.choice(FILLER))
    return "".join(out)


def _leaf_value(rng: random.Random, value: Any) -> Any:
    if isinstance(value, SigmaExpansion):
        return _leaf_value(rng, rng.choice(value.values)) if value.values else None
    if isinstance(value, SigmaString):
        return _string_value(rng, value)
    if isinstance(value, SigmaBool):
        return value.boolean
    if isinstance(value, SigmaNumber):
        n = value.number
        return rng.choice((n, str(n), float(n)))
    if isinstance(value, SigmaNull):
        return None
    if isinstance(value, SigmaExists):
        return "present" if value.exists else None
    if isinstance(value, SigmaCIDRExpression):
        return str(value.network.network_address)
    if isinstance(value, SigmaCompareExpression):
        return value.number.number + rng.choice((-1, 0, 1))
    if isinstance(value, SigmaRegularExpression):
        return str(value.regexp)
    return "x"


def _leaves(node: Any, out: list[tuple[str | None, Any]]) -> None:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        out.append((node.field, node.value))
    elif isinstance(node, ConditionValueExpression):
        out.append((None, node.value))
    elif isinstance(node, ConditionItem):
        for arg in node.args:
            _leaves(arg, out)


def rule_events(rule: SigmaRule, rng: random.Random, dataset: str | None = None, count: int = 3) -> list[dict[str, Any]]:
    """Events built from a processed rule's values: likely hits, then near misses."""
    leaves: list[tuple[str | None, Any]] = []
    for condition in rule.detection.parsed_condition:
        _leaves(condition.parsed, leaves)
    events: list[dict[str, Any]] = []
    for n in range(count):
        event: dict[str, Any] = {"event.dataset": dataset} if dataset else {}
        chosen = leaves if n == 0 else [leaf for leaf in leaves if rng.random() < 0.7]
        for name, value in chosen:
            generated = _leaf_value(rng, value)
            key = name if name is not None else f"keyword_{rng.randint(0, 3)}"
            if generated is None:
                event.pop(key, None)
                continue
            if isinstance(generated, str):
                where = rng.random()
                if n > 0 and where < 0.3:
                    generated = "prefix " + generated
                elif n > 0 and where < 0.6:
                    generated = generated + " suffix"
                if n == count - 1 and generated and rng.random() < 0.5:  # near miss: one character changed
                    i = rng.randrange(len(generated))
                    generated = generated[:i] + chr((ord(generated[i]) + 1) % 0x250 or 65) + generated[i + 1:]
                if rng.random() < 0.1:
                    generated = [generated, "other"]
            event[key] = generated
        events.append(event)
    return events


IMAGES = ["C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
          "C:\\Windows\\explorer.exe", "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
          "C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\System32\\rundll32.exe", "C:\\Users\\bob\\AppData\\Local\\Temp\\x.exe",
          "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe", "C:\\Windows\\System32\\reg.exe", "C:\\Windows\\System32\\certutil.exe"]
COMMANDS = ["-NoProfile -ExecutionPolicy Bypass -Command Get-Process", "/c whoami /all", "--type=renderer --field-trial-handle=1",
            "-k netsvcs -p -s Schedule", "shell32.dll,Control_RunDLL", "query HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
            "-urlcache -split -f http://10.0.0.5/a.txt", "/s /q C:\\Temp", "-enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAKQA=", ""]
USERS = ["CORP\\alice", "NT AUTHORITY\\SYSTEM", "CORP\\bob", "NT AUTHORITY\\NETWORK SERVICE"]
SYSMON = "Microsoft-Windows-Sysmon/Operational"
KINDS = [(SYSMON, 1), (SYSMON, 1), (SYSMON, 1), (SYSMON, 3), (SYSMON, 11), (SYSMON, 13), (SYSMON, 7), ("Security", 4688),
         ("Security", 4624), ("Microsoft-Windows-PowerShell/Operational", 4104), ("System", 7045), ("Application", 1000)]


def windows_events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Flat Windows/Sysmon-shaped events (the rsigma bench lanes' shape), deterministic for a seed."""
    rng = random.Random(seed)
    events = []
    for n in range(count):
        image = rng.choice(IMAGES)
        parent = rng.choice(IMAGES)
        channel, event_id = rng.choice(KINDS)
        event: dict[str, Any] = {
            "EventID": event_id,
            "Channel": channel,
            "Provider_Name": "Microsoft-Windows-Sysmon" if "Sysmon" in channel else "Microsoft-Windows-Security-Auditing",
            "Computer": f"ws{rng.randint(1, 400):03d}.corp.local",
            "UtcTime": f"2026-11-29 12:{n % 60:02d}:{rng.randint(0, 59):02d}.123",
            "ProcessId": rng.randint(100, 65000),
            "Image": image,
            "OriginalFileName": image.rsplit("\\", 1)[-1].upper(),
            "CommandLine": f"\"{image}\" {rng.choice(COMMANDS)} {rng.randint(0, 99999)}",
            "CurrentDirectory": "C:\\Windows\\system32\\",
            "User": rng.choice(USERS),
            "IntegrityLevel": rng.choice(("Medium", "High", "System")),
            "Hashes": f"SHA256={rng.getrandbits(256):064X},IMPHASH={rng.getrandbits(128):032X}",
            "ParentImage": parent,
            "ParentCommandLine": f"\"{parent}\" {rng.choice(COMMANDS)}",
        }
        if event["EventID"] in (13, 12):
            event["TargetObject"] = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater"
            event["Details"] = image
        if event["EventID"] == 11:
            event["TargetFilename"] = f"C:\\Users\\bob\\AppData\\Local\\Temp\\{rng.randint(0, 999)}.tmp"
        if event["EventID"] == 3:
            event.update({"DestinationIp": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                          "DestinationPort": rng.choice((443, 80, 445, 3389, 4444)), "Initiated": "true"})
        if event["EventID"] == 4104:
            event["ScriptBlockText"] = f"Get-ChildItem -Path C:\\Users -Recurse | Out-File c:\\temp\\{n}.txt"
        events.append(event)
    return events
