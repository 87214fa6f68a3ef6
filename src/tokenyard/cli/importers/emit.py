"""What every importer shares: its result type, money and name conversions, the YAML it
writes, and the check that the YAML is a config tokenyard itself accepts.

An importer is a pure function from the parsed foreign file to a :class:`Conversion`; this
module turns that into text. The check runs tokenyard's own parser on the text (with a
stand-in value for every ``${NAME}`` it references), so an import can never hand the user
a file that ``tokenyard serve`` would then refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import yaml

from tokenyard.config import parse_config
from tokenyard.errors import ConfigError
from tokenyard.providers.registry import availability_problems
from tokenyard.wire.json import JSONObject

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STAND_IN = "tokenyard-import-check-value"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
PER_MILLION = 1_000_000


class ImportProblem(ValueError):
    """The input cannot be imported at all (not YAML/JSON, wrong shape, nothing usable).
    Settings that merely do not map are warnings, never this."""


@dataclass
class Conversion:
    """An importer's answer: the tokenyard config as plain data, and one line for every
    setting of the source that was not carried over (or was carried over with a caveat)."""

    config: JSONObject
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    """What was read, for the header comment (e.g. ``LiteLLM config litellm.yaml``)."""


def decimal_text(value: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros (``2.5``, ``0.15``, ``3``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def per_million(value: object) -> str | None:
    """A per-token price as the per-1M-token decimal string tokenyard configs use.

    YAML reads ``0.0000025`` as a float; ``str`` of a float is its shortest repr
    (``2.5e-06``), which ``Decimal`` parses exactly, so no binary rounding reaches the
    price. Strings (``"1e-6"``) and integers are parsed the same way. None when the value
    is not a non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0:
        return None
    return decimal_text(number * PER_MILLION)


def slug(text: str) -> str:
    """A provider name made of ``a-z0-9-`` (names appear in ``x-tokenyard-provider``)."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-")


def unique_name(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def render(conversion: Conversion) -> str:
    """The config as YAML text, after a header comment that says where it came from and
    that the warnings printed beside it need reading."""
    header = [
        f"# tokenyard config imported from {conversion.source or 'another gateway'}",
        "# by `tokenyard import`. Review before use: every setting that did not map was",
        "# printed as a warning (also listed below); see docs/migration.md.",
    ]
    header += [f"#   - {line}" for line in conversion.warnings]
    body = yaml.safe_dump(
        conversion.config, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return "\n".join(header) + "\n" + body


def validation_problems(text: str) -> list[str]:
    """What tokenyard's own parser says about ``text``, with every referenced ``${NAME}``
    set to a stand-in value: empty when ``tokenyard serve`` would accept the file once
    those variables are set."""
    environ = {name: _STAND_IN for name in _ENV_REF.findall(text)}
    try:
        config = parse_config(text, environ)
    except ConfigError as exc:
        return list(exc.problems)
    return availability_problems(config.providers)
