"""How much of a SigmaHQ checkout the engine compiles, per rule folder, with the reasons for the rest.

    python bench/sigmahq_compat.py SIGMA_CHECKOUT [--json FILE]

For each folder (rules, rules-emerging-threats, rules-threat-hunting, rules-compliance, rules-placeholder,
deprecated, unsupported): rule documents found, rules pySigma parses, rules we compile (the target: every
rule pySigma parses), and the failures grouped by kind (exception class / our reason). Also counts rules
that compiled with warnings (an unresolved ``%placeholder%`` matches nothing until a pipeline defines it).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporal_siem.detections.sigma.loader import load_rules, rule_files  # noqa: E402
from temporal_siem.detections.sigma.pipelines import build_pipeline  # noqa: E402
from temporal_siem.detections.sigma.ruleset import Ruleset  # noqa: E402

FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-compliance", "rules-placeholder",
           "deprecated", "unsupported")


def kind_of(error: str) -> str:
    """The class of a failure, without the rule-specific part (file names, values)."""
    text = re.sub(r"^rule '.*?': ", "", error)
    text = re.sub(r"^correlation '.*?': ", "", text)
    head = text.split(":", 1)[0]
    if head.endswith(("Error", "Exception")) or head.startswith("invalid YAML"):
        detail = text.split(":", 2)[1] if ":" in text else ""
        detail = re.sub(r"'[^']*'", "'…'", detail).strip()[:70]
        return f"{head}: {detail}" if detail else head
    return re.sub(r"'[^']*'", "'…'", text)[:90]


def folder_report(path: Path) -> dict[str, Any]:
    documents = 0
    for file in rule_files([path]):
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        documents += sum(1 for doc in re.split(r"^---\s*$", text, flags=re.M) if doc.strip())
    loaded = load_rules([path])
    ruleset = Ruleset.compile(loaded.rules, loaded.correlations, build_pipeline(), [])
    compiled = len(ruleset.rules) + len(ruleset.correlations)
    # pySigma parses conditions lazily: a condition it rejects surfaces at compile time but is still pySigma's verdict
    rejected_by_pysigma = sum(1 for e in ruleset.errors if kind_of(e.error).startswith("Sigma"))
    parsed = len(loaded.rules) + len(loaded.correlations) - rejected_by_pysigma
    reasons = Counter(kind_of(e.error) for e in [*loaded.errors, *ruleset.errors])
    warned = sum(1 for r in ruleset.rules if r.warnings)
    return {"folder": path.name, "documents": documents, "parsed_by_pysigma": parsed, "compiled": compiled,
            "parse_failures": len(loaded.errors), "compile_failures": len(ruleset.errors),
            "compiled_with_warnings": warned, "reasons": dict(reasons.most_common())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    root = Path(args.checkout)
    reports = []
    start = time.perf_counter()
    for name in FOLDERS:
        if (root / name).is_dir():
            reports.append(folder_report(root / name))
    total_parsed = sum(r["parsed_by_pysigma"] for r in reports)
    total_compiled = sum(r["compiled"] for r in reports)
    total_docs = sum(r["documents"] for r in reports)
    print(f"{'folder':26} {'documents':>9} {'pySigma':>8} {'compiled':>8} {'share':>7}  warnings")
    for r in reports:
        share = r["compiled"] / r["documents"] if r["documents"] else 0.0
        print(f"{r['folder']:26} {r['documents']:9} {r['parsed_by_pysigma']:8} {r['compiled']:8} {share:7.1%}  "
              f"{r['compiled_with_warnings']}")
    print(f"{'total':26} {total_docs:9} {total_parsed:8} {total_compiled:8} "
          f"{(total_compiled / total_docs if total_docs else 0):7.1%}")
    print(f"compiled / parsed by pySigma: {total_compiled}/{total_parsed} "
          f"({(total_compiled / total_parsed if total_parsed else 0):.2%}) in {time.perf_counter() - start:.1f}s")
    for r in reports:
        if r["reasons"]:
            print(f"\n{r['folder']}: why the rest did not load")
            for reason, count in r["reasons"].items():
                print(f"  {count:5}  {reason}")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({"folders": reports, "parsed": total_parsed, "compiled": total_compiled}, indent=2))


if __name__ == "__main__":
    main()
