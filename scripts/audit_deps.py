"""Audit the installed environment (what pip resolved for this run) for known vulnerabilities.

Run by scripts/check. First ``pip-audit --local --skip-editable`` (the project itself is not
a dependency). pip-audit asks PyPI's per-release JSON API (``/pypi/NAME/VERSION/json``) or
OSV; where neither answers — on the build machines of this project PyPI is reached through
a mirror that serves only the per-project JSON (``/pypi/NAME/json``) and OSV does not
resolve — pip-audit skips every package and passes. So each package pip-audit could not
audit is looked up here in PyPI's per-project JSON, whose ``vulnerabilities`` are those of
the latest release: a package installed at its latest release is audited that way, any
other is listed as not audited (with its latest version, so an upgrade can be judged).

Exit 1 when any vulnerability not in IGNORED is found, or when PyPI cannot be reached at
all; 0 otherwise. IGNORED holds only findings that do not apply to tokenyard, each with the
date it was judged and why.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import distributions
from typing import Any

from packaging.utils import canonicalize_name

IGNORED: dict[str, tuple[str, str]] = {
    # "GHSA-xxxx-xxxx-xxxx": ("2026-11-25", "why it does not apply to tokenyard"),
}
PROJECT = "tokenyard"
PYPI = "https://pypi.org/pypi/{name}/json"


def pip_audit() -> list[dict[str, Any]]:
    """pip-audit's report of the installed environment: one entry per distribution."""
    command = [sys.executable, "-m", "pip_audit", "--local", "--skip-editable"]
    command += ["--progress-spinner", "off", "--format", "json"]
    for vuln_id in IGNORED:
        command += ["--ignore-vuln", vuln_id]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (fixed argv)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.exit(f"pip-audit failed:\n{done.stderr[-2000:]}")
    # a skipped entry names no version: take it from the environment pip-audit read
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    deps = [d for d in report["dependencies"] if d["name"] != PROJECT]
    return [{"version": installed.get(canonicalize_name(d["name"]), "?"), **d} for d in deps]


def latest_release(name: str) -> tuple[str, list[dict[str, Any]]] | None:
    """(latest version, its vulnerabilities) from PyPI's per-project JSON; None when PyPI
    does not know the package. Raises URLError when PyPI cannot be reached."""
    try:
        url = PYPI.format(name=name)  # always https://pypi.org
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310
            doc = json.load(answer)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    return doc["info"]["version"], doc.get("vulnerabilities") or []


def main() -> int:
    deps = pip_audit()
    found = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])]
    skipped = [d for d in deps if "skip_reason" in d]
    try:
        with ThreadPoolExecutor(8) as pool:
            latest = list(pool.map(lambda d: latest_release(d["name"]), skipped))
    except urllib.error.URLError as error:
        print(f"audit: PyPI cannot be reached ({error.reason}): nothing was audited")
        return 1
    not_audited, unknown = [], []
    for dep, release in zip(skipped, latest, strict=True):
        if release is None:
            unknown.append(f"{dep['name']} {dep['version']}")
        elif release[0] != dep["version"]:
            not_audited.append(f"{dep['name']} {dep['version']} (latest {release[0]})")
        else:
            found += [
                (dep["name"], dep["version"], vuln["id"])
                for vuln in release[1]
                if not vuln.get("withdrawn")
                and not IGNORED.keys() & {vuln["id"], *vuln.get("aliases", [])}
            ]
    audited = len(deps) - len(not_audited) - len(unknown)
    service = (
        "pip-audit" if not skipped else "PyPI per-project JSON (pip-audit's services unreachable)"
    )
    print(f"audit: {audited} of {len(deps)} installed packages audited through {service}")
    if not_audited:
        print("  not at their latest release, so not audited here:", ", ".join(not_audited))
    if unknown:
        print("  not on PyPI:", ", ".join(unknown))
    for name, version, vuln_id in found:
        print(f"  VULNERABLE: {name} {version}: {vuln_id}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
