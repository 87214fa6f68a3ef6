"""``tokenyard import litellm CONFIG.yaml`` and ``tokenyard import one-api CHANNELS.json``.

Reads the file, converts it, checks the result with tokenyard's own parser and writes it
(stdout or ``-o``). Every warning goes to stderr, one line each, so nothing is dropped
silently. Exit 0: a valid config was written; 1: the input could not be imported (the
message says why) — never a traceback for a bad file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from tokenyard.cli.importers.emit import Conversion, ImportProblem, render, validation_problems
from tokenyard.cli.importers.litellm import convert_litellm
from tokenyard.cli.importers.oneapi import convert_oneapi


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportProblem(f"{path}: cannot read: {exc}") from None


def _litellm(args: argparse.Namespace) -> Conversion:
    try:
        data = yaml.safe_load(_read(args.source))
    except yaml.YAMLError as exc:
        raise ImportProblem(f"{args.source}: not valid YAML: {exc}") from None
    return convert_litellm(data, f"LiteLLM config {Path(args.source).name}")


def _oneapi(args: argparse.Namespace) -> Conversion:
    try:
        data = json.loads(_read(args.source))
    except ValueError as exc:
        raise ImportProblem(f"{args.source}: not valid JSON: {exc}") from None
    source = f"{args.flavor if args.flavor != 'auto' else 'one-api/new-api'} channel export "
    return convert_oneapi(data, args.flavor, source + Path(args.source).name)


def run_import(args: argparse.Namespace) -> int:
    try:
        conversion = _litellm(args) if args.importer == "litellm" else _oneapi(args)
    except ImportProblem as exc:
        print(f"tokenyard import: {exc}", file=sys.stderr)
        return 1
    text = render(conversion)
    for warning in conversion.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    problems = validation_problems(text)
    if problems:
        print("tokenyard import: the converted config does not validate:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"tokenyard import: {args.output}: cannot write: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.output} (validated by tokenyard's parser)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_import_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = sub.add_parser("import", help="convert another gateway's config")
    kinds = command.add_subparsers(dest="importer", required=True)
    litellm = kinds.add_parser("litellm", help="a LiteLLM proxy config.yaml")
    litellm.add_argument("source", metavar="CONFIG.yaml")
    oneapi = kinds.add_parser("one-api", help="a one-api/new-api channel export (JSON)")
    oneapi.add_argument("source", metavar="CHANNELS.json")
    oneapi.add_argument(
        "--flavor",
        choices=["auto", "one-api", "new-api"],
        default="auto",
        help="whose channel type numbers the export uses (default: detected from its columns)",
    )
    for parser in (litellm, oneapi):
        parser.add_argument("-o", "--output", metavar="OUT.yaml", help="default: stdout")
        parser.set_defaults(run=run_import)
