"""Sigma condition strings parsed without pyparsing, for the plain ones (nearly every rule's).

Why: pySigma parses a condition with a pyparsing ``infix_notation`` grammar (~0.2 ms per distinct string) and
deep-copies its cached tree on every parse; together a sixth of the condition work of a cold SigmaHQ load.
:func:`parse_condition` builds the very same tree (the same pySigma classes, built by their constructors,
then pySigma's own ``postprocess``) for conditions made only of identifiers, ``1/any/all of`` selectors,
``and``/``or``/``not`` and parentheses, separated by spaces. Anything else, and anything pyparsing might read
differently (a word starting with ``not``, ``and`` or ``or``, a pipe, another character), goes to pySigma's
``parse``, which stays the reference and the source of every error message. Checked equal to pySigma's
parse on the corpus and by hypothesis (tests/sigma/test_lazy_load.py).
"""

from __future__ import annotations

import re
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionIdentifier,
    ConditionNOT,
    ConditionOR,
    ConditionSelector,
    SigmaCondition,
)

_TOKEN = re.compile(r"[ \t\r\n]*(?:([()])|([A-Za-z0-9_*-]+))")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]+\Z")  # pySigma's Word(alphanums + "_-")
_PATTERN = re.compile(r"[A-Za-z0-9*_]+\Z")  # pySigma's Word(alphanums + "*_")
_QUANTIFIERS = frozenset({"1", "any", "all"})
_OPERATOR_PREFIXES = ("not", "and", "or")  # pyparsing matches these as literals, also inside longer words


class _Unsure(Exception):
    """Not a condition this parser reads exactly as pyparsing: ask pySigma."""


def parse_condition(condition: SigmaCondition) -> Any:
    """``condition.parse(True)``: pySigma's condition tree, post-processed against the rule's detections."""
    tree = condition_tree(condition.condition)
    if tree is None:
        return condition.parse(True)
    return tree.postprocess(condition.detections, source=condition.source)


def condition_tree(text: str) -> Any:
    """The tree ``sigma.conditions._parse_condition_string(text)`` gives (before post-processing), or None."""
    tokens = _tokens(text)
    if tokens is None or not tokens:
        return None
    try:
        tree, position = _or(tokens, 0)
    except (_Unsure, IndexError, RecursionError):
        return None
    return tree if position == len(tokens) else None


def _tokens(text: str) -> list[str] | None:
    tokens: list[str] = []
    position, end = 0, len(text)
    while True:
        found = _TOKEN.match(text, position)
        if found is None:
            return tokens if text[position:].strip(" \t\r\n") == "" else None
        tokens.append(found.group(1) or found.group(2))
        position = found.end()
        if position == end:
            return tokens


def _or(tokens: list[str], position: int) -> tuple[Any, int]:
    first, position = _and(tokens, position)
    args = [first]
    while position < len(tokens) and tokens[position] == "or":
        node, position = _and(tokens, position + 1)
        args.append(node)
    return (first if len(args) == 1 else ConditionOR(args)), position


def _and(tokens: list[str], position: int) -> tuple[Any, int]:
    first, position = _not(tokens, position)
    args = [first]
    while position < len(tokens) and tokens[position] == "and":
        node, position = _not(tokens, position + 1)
        args.append(node)
    return (first if len(args) == 1 else ConditionAND(args)), position


def _not(tokens: list[str], position: int) -> tuple[Any, int]:
    token = tokens[position]
    if token == "not":
        inner, position = _not(tokens, position + 1)
        return ConditionNOT([inner]), position
    if token == "(":
        inner, position = _or(tokens, position + 1)
        if tokens[position] != ")":
            raise _Unsure
        return inner, position + 1
    if token == ")" or token.startswith(_OPERATOR_PREFIXES):
        raise _Unsure
    if token in _QUANTIFIERS and position + 2 < len(tokens) and tokens[position + 1] == "of":
        pattern = tokens[position + 2]
        if not _PATTERN.match(pattern) or pattern.startswith(_OPERATOR_PREFIXES):
            raise _Unsure
        return ConditionSelector([token, pattern]), position + 3
    if not _IDENTIFIER.match(token) or token == "of":
        raise _Unsure
    return ConditionIdentifier([token]), position + 1
