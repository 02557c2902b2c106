"""Cold rule load (issue 19): lazily compiled rules, the loader's condition trees reused, the plain YAML path.

Each shortcut must give what the long way gives: the same matches, the same errors at load time, the same
documents from YAML.
"""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma import loader
from temporal_siem.detections.sigma.compiler import LAZY_MAX_DEPTH, LazyMatch
from temporal_siem.detections.sigma.ruleset import Ruleset

RULE = """
title: {title}
id: {id}
logsource: {{product: windows, category: process_creation}}
detection:
  a: {{Image|endswith: '\\\\cmd.exe'}}
  b: {{CommandLine|contains: [' /c ', ' /k ']}}
  f: {{User: SYSTEM}}
  condition: {condition}
level: high
"""


def _write(tmp_path, condition: str, ident: str = "2f7d1e3a-1111-4c2b-9a6e-1d2c3b4a5f60", title: str = "t"):
    path = tmp_path / f"{ident}.yml"
    path.write_text(RULE.format(title=title, id=ident, condition=condition), encoding="utf-8")
    return path


def test_rule_compiles_on_first_use_and_replaces_itself(tmp_path):
    _write(tmp_path, "a and b and not f")
    ruleset = Ruleset.from_paths([tmp_path], builtin_rules=False)
    (rule,) = ruleset.rules
    assert isinstance(rule.match, LazyMatch) and rule.module_code is None
    event = {"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd.exe /c whoami", "User": "bob"}
    assert ruleset.match_indices(event) == [0]
    assert not isinstance(rule.match, LazyMatch) and rule.module_code is not None
    assert ruleset.functions[0] is rule.match  # later calls go straight to the compiled function
    assert ruleset.match_indices({**event, "User": "SYSTEM"}) == []


def test_deep_condition_compiles_at_load(tmp_path):
    condition = "not " * (LAZY_MAX_DEPTH + 2) + "a"  # one tree level per `not`
    _write(tmp_path, condition)
    ruleset = Ruleset.from_paths([tmp_path], builtin_rules=False)
    assert ruleset.errors == []
    (rule,) = ruleset.rules
    assert not isinstance(rule.match, LazyMatch) and rule.module_code is not None


def test_cache_keeps_unused_rules_lazy_and_used_ones_compiled(tmp_path):
    from temporal_siem.detections.sigma.cache import RuleCache

    rules = tmp_path / "rules"
    rules.mkdir()
    _write(rules, "a and b", "2f7d1e3a-1111-4c2b-9a6e-1d2c3b4a5f61", "one")
    _write(rules, "a and f", "2f7d1e3a-1111-4c2b-9a6e-1d2c3b4a5f62", "two")
    cache = RuleCache(tmp_path / "cache")
    cold = Ruleset.from_paths([rules], builtin_rules=False, cache=cache)
    assert cache.last == "miss"
    warm = Ruleset.from_paths([rules], builtin_rules=False, cache=cache)
    assert cache.last == "hit"
    assert all(isinstance(r.match, LazyMatch) for r in warm.rules)
    assert [r.source_code for r in warm.rules] == [r.source_code for r in cold.rules]
    event = {"Image": "C:\\x\\cmd.exe", "CommandLine": "cmd /c x", "User": "SYSTEM"}
    assert warm.match_indices(event) == cold.match_indices(event) == [0, 1]


def test_same_generated_code_when_the_pipeline_rewrites_the_rule(tmp_path):
    """The loader's trees are reused only for rules no pipeline item touched: a renamed field must show."""
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("name: rename\npriority: 20\ntransformations:\n  - id: m\n    type: field_name_mapping\n"
                        "    mapping: {User: user.name}\n", encoding="utf-8")
    rules = tmp_path / "rules"
    rules.mkdir()
    _write(rules, "a and not f")
    plain = Ruleset.from_paths([rules], builtin_rules=False)
    mapped = Ruleset.from_paths([rules], builtin_rules=False, pipelines=[pipeline])
    assert "'User'" in plain.rules[0].source_code
    assert "'user.name'" in mapped.rules[0].source_code and "'User'" not in mapped.rules[0].source_code


def test_bad_condition_is_still_a_load_error_with_line(tmp_path):
    path = _write(tmp_path, "a and missing")
    ruleset = Ruleset.from_paths([tmp_path], builtin_rules=False)
    assert ruleset.rules == []
    (error,) = ruleset.errors
    assert error.file == str(path) and "missing" in error.error and error.line is not None


_scalars = st.one_of(st.text(max_size=8), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                     st.sampled_from(["yes", "no", "on", "0x1f", "1_000", "12:30", "2024-01-02", "~", "-", "'q'", "*a"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                       max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(_values, min_size=1, max_size=3), st.sampled_from([None, False, True]))
def test_plain_yaml_path_equals_pyyaml(documents, flow):
    text = yaml.safe_dump_all(documents, default_flow_style=flow)
    fast = loader._load_plain(text)
    expected = list(yaml.load_all(text, Loader=loader.RuleYamlLoader))
    assert fast is None or repr(fast) == repr(expected)


def test_plain_yaml_path_leaves_duplicates_and_merge_keys_to_pyyaml():
    assert loader._load_plain("a: 1\na: 2\n") is None
    assert loader._load_plain("b: {x: 1}\nc:\n  <<: {x: 2}\n") is None
    assert loader._load_plain("a: !!python/name:os.system x\n") is None
    assert loader._load_plain("a: [1\n") is None


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", "Z", "\\", "*", "?", " ", "é", "{", "}"]), max_size=12) | st.text(max_size=8),
       st.booleans())
def test_sigma_string_fast_path_equals_pysigmas_parse(text, escape):
    """The loader's ``SigmaString`` shortcut (values without wildcards) gives pySigma's own parse."""
    ours = loader.SigmaString.__new__(loader.SigmaString)
    loader._sigma_string_init(ours, text, escape)
    reference = loader.SigmaString.__new__(loader.SigmaString)
    loader._sigma_string_parse(reference, text, escape)
    assert ours.s == reference.s and ours.original == reference.original


def test_sigma_string_fast_path_is_installed_and_keeps_escapes():
    assert loader.SigmaString.__init__ is loader._sigma_string_init
    assert loader.SigmaString("C:\\\\Windows\\\\x\\y").s == ["C:\\Windows\\x\\y"]
    assert loader.SigmaString("").s == [] and loader.SigmaString().original == ""


def _rglob_rule_files(paths):
    """The listing as it was (``rglob`` and a ``resolve()`` per file): the reference for :func:`loader.rule_files`."""
    from pathlib import Path

    files, seen = [], set()
    for raw in paths:
        root = Path(raw)
        found = sorted(p for p in root.rglob("*") if p.suffix in loader.RULE_SUFFIXES
                       and not p.name.endswith(loader.TEST_SUFFIXES) and p.is_file()) if root.is_dir() else [root]
        for path in found:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                files.append(path)
    return files


def test_rule_files_equals_the_rglob_listing(tmp_path):
    tree = tmp_path / "rules"
    (tree / "a" / "b").mkdir(parents=True)
    for name in ("a/x.yml", "a/b/y.yaml", "a/z.tests.yml", "a/Q.YML", ".yml", "a/.hidden.yml", "a/notes.txt", "a/b/w.yaml.bak"):
        (tree / name).write_text("x", encoding="utf-8")
    (tree / "dir.yml").mkdir()
    (tree / "linked").symlink_to(tree / "a", target_is_directory=True)  # not entered by rglob
    (tree / "alias.yml").symlink_to(tree / "a" / "x.yml")  # the same file twice: listed once
    (tree / "broken.yml").symlink_to(tree / "missing.yml")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.yml").write_text("x", encoding="utf-8")
    (tree / "other.yml").symlink_to(outside / "o.yml")
    for paths in ([tree], [tree, tree / "a"], [tree / "a", tree], [tree / "linked", tree], [tree / "a" / "x.yml", tree],
                  [outside, tree], [tree / "a" / ".." / "a"], [tmp_path / "nope"]):
        assert loader.rule_files(paths) == _rglob_rule_files(paths), paths
    assert [p.relative_to(tree).as_posix() for p in loader.rule_files([tree])] == [
        "a/.hidden.yml", "a/b/y.yaml", "a/x.yml", "other.yml"]  # alias.yml is a/x.yml again; broken.yml is no file


def test_a_file_reached_twice_is_listed_once(tmp_path):
    """Identified by device and inode: through a symlink, a hard link, a second root or the file given itself."""
    import os

    tree = tmp_path / "rules"
    tree.mkdir()
    (tree / "a.yml").write_text("x", encoding="utf-8")
    os.link(tree / "a.yml", tree / "b.yml")
    (tree / "c.yml").symlink_to(tree / "a.yml")
    (tree / "d.yml").write_text("x", encoding="utf-8")  # same contents, another file: listed
    links = tmp_path / "links"
    links.mkdir()
    (links / "e.yml").symlink_to(tree / "d.yml")
    assert loader.rule_files([tree, links, tree / "a.yml", tree / "." / "d.yml"]) == [tree / "a.yml", tree / "d.yml"]
    assert loader.rule_files([links, tree]) == [links / "e.yml", tree / "a.yml"]


def test_gc_paused_leaves_no_young_collection_and_keeps_frozen_objects(tmp_path):
    import gc

    from temporal_siem.detections.sigma.ruleset import gc_paused

    _write(tmp_path, "a and b")
    with gc_paused():
        junk = [[i] for i in range(50_000)]
    assert gc.get_count()[0] < 1_000  # what the load allocated is not waiting for a young collection
    del junk
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            Ruleset.from_paths([tmp_path], builtin_rules=False)
        assert gc.get_freeze_count() == frozen  # someone else's freeze (replay --workers) is left alone
    finally:
        gc.unfreeze()


_PLAIN_SPELLINGS = ["yes", "No", "ON", "off", "y", "null", "Null", "~", "0x1f", "0o17", "017", "0b101", "1_000", "12:30",
                    "1:20:30.5", "2024-01-02", "2024-01-02T10:00:00Z", "2024-1-2 3:04:05 +01:00", ".inf", "-.Inf", ".NaN",
                    "1e3", "3.14", "+5", "-0", "=", "<<", "plain text", "C:\\Windows", "true", "FALSE", "1.0e+3"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_PLAIN_SPELLINGS) | st.text(max_size=10), st.booleans(), st.booleans(),
       st.sampled_from([yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode]))
def test_rule_loader_resolves_tags_as_pyyaml(value, plain, quoted, kind):
    """The loader's own ``resolve`` (no resolver list per scalar) gives PyYAML's tag for every node."""
    reference = yaml.SafeLoader("")
    assert loader._resolve(None, kind, value, (plain, quoted)) == reference.resolve(kind, value, (plain, quoted))


def test_rule_loader_reads_plain_scalars_as_pyyaml():
    spellings = [s for s in _PLAIN_SPELLINGS if s not in ("=", "<<")]  # tags the safe constructor refuses
    text = "".join(f"k{i}: {spelling}\n" for i, spelling in enumerate(spellings)) + "e:\nl: [a, 1, no, ~]\n"
    expected = yaml.load(text, Loader=yaml.SafeLoader)
    assert loader.RuleYamlLoader.resolve is loader._resolve
    assert repr(yaml.load(text, Loader=loader.RuleYamlLoader)) == repr(expected)
    assert repr(loader._load_plain(text)) == repr([expected])


_WORDS = ["sel", "filter_1", "x-y", "1", "any", "all", "of", "them", "sel*", "notepad", "nota", "orb", "android", "and",
          "or", "not", "NOT", "AND", "a_b*", "1of", "them*"]
_condition_texts = st.one_of(
    st.recursive(st.sampled_from(_WORDS) | st.builds(lambda q, p: f"{q} of {p}", st.sampled_from(["1", "any", "all"]),
                                                     st.sampled_from(["them", "sel*", "sel", "x-y", "or*", "*"])),
                 lambda inner: st.one_of(st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or", "andx"]), inner),
                                         st.builds(lambda a: f"not {a}", inner), st.builds(lambda a: f"({a})", inner),
                                         st.builds(lambda a, sp: f"{sp}{a}{sp}", inner, st.sampled_from(["", " ", "\t", "\n"]))),
                 max_leaves=8),
    st.text(alphabet=st.sampled_from(list("ab1 ()*-_|\tnotandr$é")), max_size=16))


@settings(max_examples=500, deadline=None)
@given(_condition_texts)
def test_condition_parser_equals_pysigmas(text):
    """The loader's condition parser gives pyparsing's tree, or leaves the text to pySigma (None)."""
    import sigma.conditions as pysigma_conditions

    from temporal_siem.detections.sigma.condition import condition_tree

    ours = condition_tree(text)
    if ours is None:
        return
    reference = pysigma_conditions._parse_condition_string(text)
    assert ours == reference and repr(ours) == repr(reference)


def test_condition_parser_reads_the_usual_shapes_and_leaves_the_rest():
    from temporal_siem.detections.sigma.condition import condition_tree

    for text in ("sel", "sel and not filter", "1 of sel* and not 1 of filter_*", "all of them", "(a or b) and not (c and d)",
                 "not not a", " a\tor\nb "):
        assert condition_tree(text) is not None, text
    for text in ("notepad", "a orb", "sel | count() > 5", "", "a b", "(a", "a)", "1 of", "x and", "sél"):
        assert condition_tree(text) is None, text
