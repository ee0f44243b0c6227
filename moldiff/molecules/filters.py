"""Filters of molecules by their properties: a small expression language, parsed here (never ``eval``).

An expression names per-molecule properties (:data:`moldiff.molecules.properties.PROPERTIES`) and
combines comparisons with ``and``, ``or``, ``not`` and parentheses::

    valid and qed > 0.5 and not pains
    valid and (sa < 4 or mw <= 150) and max_ring <= 6
    stable and connected and 0.3 <= qed < 0.8
    smiles != "C1CC1"

The grammar (keywords in any case; ``not`` binds tighter than ``and``, ``and`` than ``or``; a
comparison chain ``a < b < c`` means ``a < b and b < c``, as in Python)::

    expression  := or
    or          := and ("or" and)*
    and         := not ("and" not)*
    not         := "not" not | comparison
    comparison  := operand (("<" | "<=" | ">" | ">=" | "==" | "=" | "!=") operand)*
    operand     := NAME | NUMBER | STRING | "true" | "false" | "(" expression ")"

Types are checked when the expression is parsed: ``<``, ``<=``, ``>``, ``>=`` compare numbers (number
and count properties, numeric literals); ``==`` and ``!=`` also compare text with a quoted string and
truths with ``true`` / ``false``; ``and``, ``or`` and ``not`` take truths: bool properties,
comparisons, and count properties, true when not 0 (``not pains``: no PAINS alert). A number
property where a truth is needed (``qed and valid``) is an error that says to compare it.

A value that does not exist (the QED of an invalid molecule) makes what it touches *unknown*, with
SQL's three-valued logic: a comparison with it is unknown, ``not`` unknown is unknown, ``false and
unknown`` is false, ``true or unknown`` is true. A molecule passes only when the whole expression
is true, so ``not qed > 0.5`` does not pass invalid molecules.

Every mistake raises :class:`FilterError` (an :class:`~moldiff.errors.InputError`), one message that
quotes the expression, says what is wrong and where, and lists the known names.

Example (``filter_molecules(mols, "valid and qed > 0.5")`` keeps the RDKit molecules that pass):

    >>> f = parse_filter("valid and qed > 0.5 and not pains")
    >>> f.names  # the properties it needs
    ('valid', 'qed', 'pains')
    >>> f({"valid": True, "qed": 0.61, "pains": 0}), f({"valid": True, "qed": 0.61, "pains": 2})
    (True, False)
    >>> print(f.truth({"valid": True, "qed": None, "pains": None}))  # unknown: does not pass
    None
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Literal

from moldiff.errors import InputError

from .properties import PROPERTIES, PROPERTY_NAMES, molecule_properties, sa_unavailable_reason

__all__ = ["FilterError", "MoleculeFilter", "filter_molecules", "parse_filter"]


class FilterError(InputError):
    """A filter expression that cannot be parsed or checked (the message lists the known names)."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<op><=|>=|==|!=|<|>|=)
      | (?P<paren>[()])
      | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = ("and", "or", "not", "true", "false")
_COMPARE = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_ORDERING = ("<", "<=", ">", ">=")
_HINTS = {"&&": "and", "||": "or", "!": "not", "&": "and", "|": "or"}


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, op, paren, name, keyword, end
    text: str
    pos: int


# nodes: ("name", n) ("const", value, kind) ("cmp", [operands], [ops]) ("not", x) ("and", [xs]) ("or", [xs])
# kinds of values: bool, count, number, text


class MoleculeFilter:
    """A parsed filter expression: call it on a property row (``{name: value}``) for ``True`` or ``False``.

    Attributes:
        expression: the text it was parsed from.
        names: the properties it reads, in order of first use.
    """

    def __init__(self, expression: str, tree: tuple, names: tuple[str, ...]) -> None:
        self.expression = expression
        self._tree = tree
        self.names = names

    def __repr__(self) -> str:
        return f"MoleculeFilter({self.expression!r})"

    def truth(self, row: dict[str, Any]) -> bool | None:
        """The expression's three-valued truth on one row: ``True``, ``False`` or ``None`` (unknown)."""
        return _truth(self._tree, row)

    def __call__(self, row: dict[str, Any]) -> bool:
        """Whether the row passes (its truth is ``True``)."""
        return self.truth(row) is True

    def check_available(self) -> None:
        """Raise :class:`FilterError` when the expression needs a property this RDKit cannot compute."""
        reason = sa_unavailable_reason()
        if "sa" in self.names and reason is not None:
            raise FilterError(f"filter {self.expression!r} needs the SA score, which is missing here: {reason}")


def _error(expression: str, message: str, pos: int | None = None) -> FilterError:
    where = "" if pos is None else f", at character {pos + 1}"
    return FilterError(f"filter {expression!r}{where}: {message}; known names: {', '.join(PROPERTY_NAMES)}")


def _tokens(expression: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(expression):
        if expression[pos:].strip() == "":
            break
        m = _TOKEN.match(expression, pos)
        if m is None or m.end() == pos:
            start = len(expression) - len(expression[pos:].lstrip())
            bad = next((h for h in sorted(_HINTS, key=len, reverse=True) if expression.startswith(h, start)), None)
            hint = f" (write {_HINTS[bad]!r})" if bad else ""
            raise _error(expression, f"unexpected {expression[start]!r}{hint}", start)
        kind = m.lastgroup
        text = m.group(kind)
        start = m.start(kind)
        if kind == "name" and text.lower() in _KEYWORDS:
            kind, text = "keyword", text.lower()
        out.append(_Token(kind, text, start))
        pos = m.end()
    out.append(_Token("end", "", len(expression)))
    return out


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.k = 0
        self.names: list[str] = []

    def peek(self) -> _Token:
        return self.tokens[self.k]

    def take(self) -> _Token:
        token = self.tokens[self.k]
        self.k += 1
        return token

    def fail(self, message: str, token: _Token | None = None) -> FilterError:
        token = token or self.peek()
        return _error(self.expression, message, token.pos)

    def parse(self) -> tuple:
        if self.peek().kind == "end":
            raise _error(self.expression, "the expression is empty")
        tree = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            if token.kind == "paren" and token.text == ")":
                raise self.fail("')' without a matching '('")
            raise self.fail(f"expected 'and', 'or' or the end, found {token.text!r}")
        self.truth(tree, None)
        return tree

    def parse_or(self) -> tuple:
        return self.parse_logical("or", self.parse_and)

    def parse_and(self) -> tuple:
        return self.parse_logical("and", self.parse_not)

    def parse_logical(self, word: str, parse_part) -> tuple:
        starts, parts = [self.peek()], [parse_part()]
        while self.peek().kind == "keyword" and self.peek().text == word:
            self.take()
            starts.append(self.peek())
            parts.append(parse_part())
        if len(parts) == 1:
            return parts[0]
        for part, start in zip(parts, starts):
            self.truth(part, start)
        return (word, parts)

    def parse_not(self) -> tuple:
        if self.peek().kind == "keyword" and self.peek().text == "not":
            token = self.take()
            inner = self.parse_not()
            self.truth(inner, token)
            return ("not", inner)
        return self.parse_comparison()

    def parse_comparison(self) -> tuple:
        operands, ops, tokens = [self.parse_operand()], [], []
        while self.peek().kind == "op":
            op = self.take()
            tokens.append(op)
            ops.append("==" if op.text == "=" else op.text)
            operands.append(self.parse_operand(after=op.text))
        if not ops:
            return operands[0]
        numeric = ("count", "number")
        for a, op, b, token in zip(operands, ops, operands[1:], tokens):
            ka, kb = _kind(a), _kind(b)
            if op in _ORDERING and (ka not in numeric or kb not in numeric):
                raise self.fail(f"{token.text!r} compares numbers, not {_describe(a)} and {_describe(b)}", token)
            if op not in _ORDERING and not (ka == kb or (ka in numeric and kb in numeric)):
                raise self.fail(f"{token.text!r} cannot compare {_describe(a)} with {_describe(b)}", token)
        return ("cmp", operands, ops)

    def parse_operand(self, after: str | None = None) -> tuple:
        token = self.take()
        if token.kind == "paren" and token.text == "(":
            inner = self.parse_or()
            close = self.peek()
            if not (close.kind == "paren" and close.text == ")"):
                raise self.fail(f"expected ')' to close the '(' at character {token.pos + 1}", close)
            self.take()
            return inner
        if token.kind == "number":
            value = float(token.text)
            return ("const", value, "number")
        if token.kind == "string":
            return ("const", token.text[1:-1], "text")
        if token.kind == "keyword" and token.text in ("true", "false"):
            return ("const", token.text == "true", "bool")
        if token.kind == "name":
            if token.text not in PROPERTIES:
                close = [token.text.lower()] if token.text.lower() in PROPERTIES else []
                close = close or difflib.get_close_matches(token.text, PROPERTY_NAMES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(f"unknown name {token.text!r}{hint}", token)
            if token.text not in self.names:
                self.names.append(token.text)
            return ("name", token.text)
        what = "the end of the expression" if token.kind == "end" else repr(token.text)
        context = f" after {after!r}" if after else ""
        raise self.fail(f"expected a name, a number or '('{context}, found {what}", token)

    def truth(self, node: tuple, token: _Token | None) -> None:
        """Check that ``node`` has a truth value (bool, count or a logical node)."""
        kind = _kind(node)
        if kind not in ("bool", "count"):
            if node[0] == "name":
                advice = "compare it, e.g. " + (f"{node[1]} > 0.5" if kind == "number" else f'{node[1]} == "..."')
            else:
                advice = "compare it with a property"
            message = f"{_describe(node)} is not true or false; {advice}"
            raise _error(self.expression, message, token.pos if token is not None else None)


def _kind(node: tuple) -> str:
    if node[0] == "name":
        return PROPERTIES[node[1]].kind
    if node[0] == "const":
        return node[2]
    return "bool"  # cmp, not, and, or


_KIND_WORDS = {"bool": "a bool", "count": "a count", "number": "a number", "text": "text"}


def _describe(node: tuple) -> str:
    if node[0] == "name":
        return f"{node[1]} ({_KIND_WORDS[PROPERTIES[node[1]].kind]})"
    if node[0] == "const":
        if node[2] == "number":
            return f"the number {node[1]:g}"
        return f"the text {node[1]!r}" if node[2] == "text" else f"{str(node[1]).lower()}"
    return "a comparison"


def _value(node: tuple, row: dict[str, Any]) -> Any:
    if node[0] == "name":
        if node[1] not in row:
            raise KeyError(f"the property row has no {node[1]!r} (computed: {sorted(row)})")
        value = row[node[1]]
        if value is not None and PROPERTIES[node[1]].kind == "bool":
            value = bool(value)
        return value
    if node[0] == "const":
        return node[1]
    return _truth(node, row)


def _truth(node: tuple, row: dict[str, Any]) -> bool | None:
    op = node[0]
    if op == "and":
        values = [_truth(x, row) for x in node[1]]
        return False if False in values else (None if None in values else True)
    if op == "or":
        values = [_truth(x, row) for x in node[1]]
        return True if True in values else (None if None in values else False)
    if op == "not":
        inner = _truth(node[1], row)
        return None if inner is None else not inner
    if op == "cmp":
        values = [_value(x, row) for x in node[1]]
        result: bool | None = True
        for a, o, b in zip(values, node[2], values[1:]):
            if a is None or b is None:
                result = None  # unknown, unless a later link is false
            elif not _COMPARE[o](a, b):
                return False
        return result
    value = _value(node, row)
    return None if value is None else bool(value)


def parse_filter(expression: str | MoleculeFilter) -> MoleculeFilter:
    """Parse and type-check a filter expression (see the module docstring).

    Raises:
        FilterError: naming the problem and its position, and listing the known names.
    """
    if isinstance(expression, MoleculeFilter):
        return expression
    if not isinstance(expression, str):
        raise FilterError(f"a filter is a string expression, got {type(expression).__name__}")
    parser = _Parser(expression)
    tree = parser.parse()
    return MoleculeFilter(expression, tree, tuple(parser.names))


def filter_molecules(
    molecules: Iterable[Any],
    expression: str | MoleculeFilter,
    bonds: Literal["file", "edm", "rdkit"] = "file",
    *,
    return_rows: bool = False,
):
    """The molecules that pass a filter expression, in their order.

    Args:
        molecules: RDKit molecules (e.g. what a generator's ``sample`` returns) or anything
            :func:`~moldiff.molecules.properties.molecule_properties` takes.
        expression: a filter expression (see the module docstring) or a parsed :class:`MoleculeFilter`.
        bonds: the protocol of the properties: ``"file"`` (default: the molecules' own bonds and
            charges), ``"edm"`` or ``"rdkit"`` (bonds perceived from the coordinates).
        return_rows: also return the property rows of the molecules that pass (``index``, their
            position in ``molecules``, and the properties the expression names).

    Returns:
        A list of the passing molecules, or ``(molecules, rows)`` with ``return_rows``.

    Raises:
        FilterError: a bad expression, or one naming the SA score where RDKit has none.
    """
    f = parse_filter(expression)
    f.check_available()
    kept, rows = [], []
    for k, mol in enumerate(molecules):
        row = molecule_properties(mol, bonds, ("index", *(n for n in f.names if n != "index")), index=k)
        if f(row):
            kept.append(mol)
            rows.append(row)
    return (kept, rows) if return_rows else kept
