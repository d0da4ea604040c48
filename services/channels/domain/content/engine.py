"""The template language: Jinja2 in its sandbox, cut down to what a collection message needs.

A template may print a known variable (``{{ amount }}``), branch on one (``{% if account_ref %}`` ...
``{% elif %}`` ... ``{% else %}`` ... ``{% endif %}``, comparisons, ``and``/``or``/``not``,
``x if c else y``) and use a few harmless filters. Anything else (attribute or item access, calls,
arithmetic, loops, ``set``, macros, includes) is refused before the template is compiled, so the known
sandbox escapes (``{{ ''.__class__ }}``, ``{{ cycler.__init__.__globals__ }}``) and output bombs
(``{{ 'a' * 10**9 }}``, ``|center(10**9)``) never run; the ``SandboxedEnvironment`` (StrictUndefined,
arithmetic intercepted) is the second line. Sources and rendered texts are bounded in size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.environment import Template
from jinja2.sandbox import SandboxedEnvironment, SecurityError

MAX_SOURCE_CHARS = 8_000
MAX_RENDERED_CHARS = 16_000
FILTERS = frozenset({"upper", "lower", "capitalize", "title", "trim", "default"})
TESTS = frozenset({"none", "defined", "number", "string"})
COMPARISONS = frozenset({"eq", "ne", "lt", "gt", "lteq", "gteq"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ALLOWED = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.CondExpr, nodes.Compare,
            nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Name, nodes.Const, nodes.Filter, nodes.Test)


class TemplateSourceError(ValueError):
    """A template that cannot be used: bad syntax, a construct outside the language, too big, an unknown
    variable, or it failed to render. The message is short and never quotes the whole source."""


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        raise SecurityError("arithmetic is not part of the template language")

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        raise SecurityError("arithmetic is not part of the template language")


ENV = _Sandbox(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=False, auto_reload=False,
               cache_size=0)


def _check_node(node: nodes.Node, variables: frozenset[str]) -> None:
    if not isinstance(node, _ALLOWED):
        raise TemplateSourceError(f"line {node.lineno}: {type(node).__name__} is not part of the template "
                                  "language (only variables, if/elif/else, comparisons and a few filters)")
    if isinstance(node, nodes.Name) and (node.ctx != "load" or node.name not in variables):
        raise TemplateSourceError(f"line {node.lineno}: unknown variable {node.name[:40]!r}; "
                                  f"known: {', '.join(sorted(variables))}")
    if isinstance(node, nodes.Const) and not isinstance(node.value, str | int | bool | None):
        raise TemplateSourceError(f"line {node.lineno}: only text, whole numbers and booleans are constants")
    if isinstance(node, nodes.Operand) and node.op not in COMPARISONS:
        raise TemplateSourceError(f"line {node.lineno}: comparison {node.op!r} is not allowed")
    if isinstance(node, nodes.Filter | nodes.Test):
        names, kind = (FILTERS, "filter") if isinstance(node, nodes.Filter) else (TESTS, "test")
        if node.name not in names:
            raise TemplateSourceError(f"line {node.lineno}: {kind} {node.name[:40]!r} is not allowed; "
                                      f"allowed: {', '.join(sorted(names))}")
        if node.node is None or node.kwargs or node.dyn_args or node.dyn_kwargs \
                or not all(isinstance(a, nodes.Const) for a in node.args):
            raise TemplateSourceError(f"line {node.lineno}: {kind} arguments must be constants")


def compile_source(source: str, variables: frozenset[str], *, name: str = "template") -> Template:
    """Parse, check and compile a template; TemplateSourceError for anything outside the language."""
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateSourceError(f"{name}: longer than {MAX_SOURCE_CHARS} characters")
    if _CONTROL.search(source):
        raise TemplateSourceError(f"{name}: contains control characters (NUL ...)")
    try:
        ast = ENV.parse(source)
    except TemplateSourceError:
        raise
    except Exception as exc:  # TemplateSyntaxError, RecursionError on absurd nesting
        raise TemplateSourceError(f"{name}: {type(exc).__name__}: {str(exc)[:200]}") from None
    stack: list[nodes.Node] = [ast]
    while stack:
        node = stack.pop()
        _check_node(node, variables)
        stack.extend(node.iter_child_nodes())
    try:
        return ENV.from_string(ast)
    except Exception as exc:
        raise TemplateSourceError(f"{name}: {type(exc).__name__}: {str(exc)[:200]}") from None


def render_compiled(template: Template, values: Mapping[str, Any], *, name: str = "template") -> str:
    """Render with ``values``; TemplateSourceError if it fails or the text is too long."""
    try:
        text = template.render(dict(values))
    except Exception as exc:  # UndefinedError, SecurityError, TypeError of a comparison ...
        raise TemplateSourceError(f"{name}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateSourceError(f"{name}: the rendered text is longer than {MAX_RENDERED_CHARS} characters")
    return text
