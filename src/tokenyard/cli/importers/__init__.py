"""``tokenyard import``: configs of other gateways (LiteLLM, one-api/new-api) turned into
tokenyard configs.

Each importer is a pure function from the parsed source file to a
:class:`~tokenyard.cli.importers.emit.Conversion` (the config as data plus a warning for
every setting that did not map); ``emit`` writes the YAML and checks it with tokenyard's own
parser. Nothing here touches the network or the environment.
"""

from __future__ import annotations

from tokenyard.cli.importers.emit import (
    Conversion,
    ImportProblem,
    render,
    validation_problems,
)
from tokenyard.cli.importers.litellm import convert_litellm
from tokenyard.cli.importers.oneapi import convert_oneapi

__all__ = [
    "Conversion",
    "ImportProblem",
    "convert_litellm",
    "convert_oneapi",
    "render",
    "validation_problems",
]
