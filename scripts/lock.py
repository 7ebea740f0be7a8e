#!/usr/bin/env python3
"""The deploy files, generated from pyproject.toml so that they cannot drift from it:

- requirements.txt: every runtime dependency pinned (`name==version`, the whole closure of
  `[project].dependencies`), then the line `.`, which installs the bot itself. Heroku's Python
  buildpack installs it as it is (`pip install -r requirements.txt`); scripts/install.sh uses
  its pins as constraints.
- .python-version: the lowest Python that `requires-python` allows, the one CI tests with.

    python3 scripts/lock.py            # resolve with pip (PyPI) and write both files; pins that
                                       # still fit are kept, so adding a dependency moves little
    python3 scripts/lock.py --upgrade  # the same, every pin at the newest release allowed
    python3 scripts/lock.py --check    # CI: exit 1, one line per problem, if they no longer fit

`--check` does not resolve again, so a new release on PyPI never fails it. It checks that the
files are consistent: each dependency of pyproject.toml is pinned at a version its specifier
allows; the pinned set is closed (each pinned package's own requirements, for this Python and
platform, are pinned and satisfied, read from the installed packages' metadata, so run it where
the pins are installed: .venv/ after scripts/install.sh); nothing is pinned that nothing needs;
`.` comes last; .python-version is right.

Standard library only, with the `packaging` library (pip's own copy when it is not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

try:
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare virtual environment: pip vendors the same library
    try:
        from pip._vendor.packaging.markers import default_environment
        from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
        from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
        from pip._vendor.packaging.utils import canonicalize_name
        from pip._vendor.packaging.version import InvalidVersion, Version
    except ImportError:
        sys.exit(f"lock: this Python ({sys.executable}) has neither pip nor packaging: run it with .venv/bin/python")

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = "requirements.txt"
PYTHON_VERSION = ".python-version"
REGENERATE = "run python3 scripts/lock.py"
REINSTALL = "install with the lock first (bash scripts/install.sh) and check again"
PIN = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([^\s;#]+)$")


class LockError(Exception):
    """A failure that stops the script: one line saying what and what to do."""


@dataclass(frozen=True)
class Problem:
    """One way the deploy files do not fit pyproject.toml, and how to fix it."""

    kind: str  # unpinned, disallowed, unsatisfied, unneeded, python-version, not-installed, format, pyproject
    text: str
    fix: str = REGENERATE

    def __str__(self) -> str:
        return f"{self.text}: {self.fix}."


class Dist(Protocol):
    """What the check reads of a distribution: importlib.metadata's Distribution has both."""

    @property
    def version(self) -> str: ...

    @property
    def requires(self) -> list[str] | None: ...


@dataclass(frozen=True)
class ReportedDist:
    """A distribution as pip's installation report describes it."""

    version: str
    requires: list[str] | None


@dataclass(frozen=True)
class Project:
    dependencies: list[str]
    python: str  # "3.11"


def read_project(root: Path) -> Project:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LockError(f"cannot read {root / 'pyproject.toml'}: {exc}") from None
    project = data.get("project", {})
    return Project(list(project.get("dependencies", [])), lowest_python(project.get("requires-python", "")))


def lowest_python(requires_python: str) -> str:
    """The lowest `major.minor` that `requires-python` allows, e.g. ">=3.11" -> "3.11"."""
    try:
        specifiers = SpecifierSet(requires_python)
    except InvalidSpecifier:
        raise LockError(f"pyproject.toml's requires-python {requires_python!r} is not a version specifier") from None
    for spec in specifiers:
        if spec.operator in (">=", "~=", "==") and not spec.version.endswith(".*"):
            release = Version(spec.version).release
            return f"{release[0]}.{release[1] if len(release) > 1 else 0}"
    raise LockError(
        f"pyproject.toml's requires-python {requires_python!r} has no lower bound: give it one, such as >=3.11"
    )


def marker_environment(python: str) -> dict[str, str]:
    """The environment markers are evaluated in: this machine, as Python `python` runs on it."""
    env = dict(default_environment())
    if env["python_version"] != python:
        env["python_version"] = python
        env["python_full_version"] = f"{python}.0"
    return env


def parse_pins(text: str) -> tuple[dict[str, tuple[str, Version]], list[Problem], bool]:
    """requirements.txt's pins by canonical name (as written, version), format problems, and whether `.` is last."""
    pins: dict[str, tuple[str, Version]] = {}
    problems: list[Problem] = []
    lines = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    for n, line in lines:
        if line == ".":
            continue
        match = PIN.match(line)
        version = None
        if match:
            with contextlib.suppress(InvalidVersion):
                version = Version(match[2])
        if match is None or version is None:
            problems.append(Problem("format", f"{REQUIREMENTS} line {n} is not a name==version pin: {line}"))
            continue
        name = canonicalize_name(match[1])
        if name in pins:
            problems.append(Problem("format", f"{REQUIREMENTS} pins {name} twice (line {n})"))
        pins[name] = (match[1], version)
    project_last = bool(lines) and lines[-1][1] == "."
    return pins, problems, project_last


def installed_distributions() -> dict[str, Dist]:
    """The distributions this Python would import, by canonical name (the first on sys.path wins)."""
    found: dict[str, Dist] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def check(root: Path, installed: Mapping[str, Dist] | None = None) -> list[Problem]:
    """Every way requirements.txt and .python-version do not fit root's pyproject.toml; [] when they fit.

    `installed` gives each package's own requirements (default: this Python's installed packages)."""
    try:
        project = read_project(root)
    except LockError as exc:
        return [Problem("pyproject", str(exc), "fix pyproject.toml")]
    if installed is None:
        installed = installed_distributions()
    problems: list[Problem] = []

    version_file = root / PYTHON_VERSION
    try:
        written = next((ln.strip() for ln in version_file.read_text().splitlines() if ln.strip()), "")
    except OSError:
        problems.append(Problem("python-version", f"{PYTHON_VERSION} is missing"))
    else:
        if written != project.python:
            problems.append(
                Problem(
                    "python-version",
                    f"{PYTHON_VERSION} says {written or 'nothing'}, but pyproject.toml's requires-python "
                    f"makes it {project.python}",
                )
            )

    try:
        text = (root / REQUIREMENTS).read_text(encoding="utf-8")
    except OSError:
        return [*problems, Problem("format", f"{REQUIREMENTS} is missing")]
    pins, format_problems, project_last = parse_pins(text)
    problems += format_problems
    if not project_last:
        problems.append(
            Problem(
                "format",
                f"{REQUIREMENTS} does not end with the line `.`, so `pip install -r {REQUIREMENTS}` "
                "would not install kling-bot",
            )
        )

    env = marker_environment(project.python)

    def applies(req: Requirement, extra: str) -> bool:
        if req.marker is None:
            return extra == ""
        # Under an extra, only what that extra adds: the rest came with the package itself.
        if extra:
            return req.marker.evaluate({**env, "extra": extra}) and not req.marker.evaluate({**env, "extra": ""})
        return req.marker.evaluate({**env, "extra": ""})

    needed: set[str] = set()
    expanded: set[tuple[str, str]] = set()
    queue: list[tuple[Requirement, str | None]] = []
    for line in project.dependencies:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            problems.append(Problem("pyproject", f"pyproject.toml's dependency {line!r} is not valid", "fix it"))
            continue
        if applies(req, ""):
            queue.append((req, None))

    while queue:
        req, needed_by = queue.pop(0)
        name = canonicalize_name(req.name)
        needed.add(name)
        whose = "pyproject.toml's dependency" if needed_by is None else f"{needed_by}'s requirement"
        pin = pins.get(name)
        if pin is None:
            problems.append(Problem("unpinned", f"{name} is not pinned in {REQUIREMENTS} ({whose} {req})"))
        elif not req.specifier.contains(pin[1], prereleases=True):
            kind = "disallowed" if needed_by is None else "unsatisfied"
            problems.append(Problem(kind, f"{REQUIREMENTS} pins {name}=={pin[1]}, which {whose} {req} does not allow"))
        extras = ["", *sorted(canonicalize_name(e) for e in req.extras)]
        todo = [e for e in extras if (name, e) not in expanded]
        if not todo:
            continue
        expanded.update((name, e) for e in todo)
        dist = installed.get(name)
        if dist is None:
            if pin is not None and "" in todo:
                problems.append(
                    Problem(
                        "not-installed",
                        f"{name} is not installed here, so its own requirements cannot be checked",
                        REINSTALL,
                    )
                )
            continue
        if pin is not None and "" in todo and Version(dist.version) != pin[1]:
            problems.append(
                Problem(
                    "not-installed",
                    f"{name} is installed at {dist.version}, not at the pinned {pin[1]}, "
                    "so its own requirements cannot be checked",
                    REINSTALL,
                )
            )
        for line in dist.requires or []:
            try:
                sub = Requirement(line)
            except InvalidRequirement:
                continue  # a package's broken metadata is not ours to fix; pip skips it too
            if any(applies(sub, extra) for extra in todo):
                queue.append((sub, name))

    # Consistent, but not as generated (a hand edit, a merge of two locks): said only when nothing else is.
    if all(p.kind == "not-installed" for p in problems) and not set(pins) - needed:
        written_pins = [(name, str(version)) for name, (_, version) in pins.items()]
        if text != render(written_pins, project.python):
            problems.append(
                Problem("format", f"{REQUIREMENTS} is not as scripts/lock.py writes it (edited by hand, or merged)")
            )
    for name in sorted(set(pins) - needed):
        problems.append(Problem("unneeded", f"{REQUIREMENTS} pins {name}=={pins[name][1]}, which nothing needs"))
    return list(dict.fromkeys(problems))  # once each, in order


def render(pins: Iterable[tuple[str, str]], python: str) -> str:
    lines = [
        "# Generated by scripts/lock.py from pyproject.toml, for Python " + python + ": do not edit by hand.",
        "# After changing [project].dependencies or requires-python, run: python3 scripts/lock.py",
        "# Every runtime dependency is pinned; the last line, `.`, installs the bot itself (kling-bot).",
    ]
    lines += [f"{name}=={version}" for name, version in sorted(pins)]
    lines.append(".")
    return "\n".join(lines) + "\n"


def resolve(dependencies: Sequence[str], constraints: Mapping[str, str]) -> dict:
    """pip's installation report for `dependencies` on this Python, resolved afresh (nothing installed)."""
    with tempfile.TemporaryDirectory(prefix="kling-lock.") as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        command += ["--disable-pip-version-check", "--report", str(report)]
        if constraints:
            constraint_file = Path(tmp) / "constraints.txt"
            constraint_file.write_text("".join(f"{n}=={v}\n" for n, v in sorted(constraints.items())))
            command += ["--constraint", str(constraint_file)]
        done = subprocess.run([*command, *dependencies], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            errors = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
            why = errors[-1].strip() if errors else f"pip exited {done.returncode}"
            raise LockError(f"pip could not resolve pyproject.toml's dependencies: {why}")
        return json.loads(report.read_text())


def lock(root: Path, *, upgrade: bool, out=sys.stdout) -> int:
    project = read_project(root)
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != project.python:
        other = shutil.which(f"python{project.python}")
        if other and os.environ.get("KLING_LOCK_REEXEC") != "1":
            # The pins must be resolved for the Python the platform runs (.python-version).
            argv = [other, str(Path(__file__).resolve()), *(["--upgrade"] if upgrade else [])]
            return subprocess.run(argv, env={**os.environ, "KLING_LOCK_REEXEC": "1"}, check=False).returncode
        raise LockError(
            f"the pins are resolved for Python {project.python} and this is Python {running}: "
            f"run this script with python{project.python}"
        )
    if not sys.platform.startswith("linux"):
        print(
            f"lock: resolving on {sys.platform}; Heroku and CI run Linux, where --check has the last word",
            file=sys.stderr,
        )

    before: dict[str, str] = {}
    try:
        old, _, _ = parse_pins((root / REQUIREMENTS).read_text(encoding="utf-8"))
        before = {name: str(version) for name, (_, version) in old.items()}
    except OSError:
        pass
    kept = {} if upgrade else before
    try:
        report = resolve(project.dependencies, kept)
    except LockError:
        if not kept:
            raise
        print("lock: the current pins no longer fit pyproject.toml; resolving every pin afresh", file=sys.stderr)
        report = resolve(project.dependencies, {})

    pins: dict[str, str] = {}
    reported: dict[str, Dist] = {}
    for item in report["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        pins[name] = item["metadata"]["version"]
        reported[name] = ReportedDist(item["metadata"]["version"], item["metadata"].get("requires_dist"))
    (root / REQUIREMENTS).write_text(render(pins.items(), project.python), encoding="utf-8")
    (root / PYTHON_VERSION).write_text(project.python + "\n", encoding="utf-8")

    # What was written must pass the check, judged by the metadata pip resolved with.
    problems = check(root, reported)
    if problems:
        for problem in problems:
            print(f"lock: {problem}", file=sys.stderr)
        raise LockError("the files just written do not pass --check (see above); this is a bug in scripts/lock.py")
    changed = sorted(n for n in set(pins) | set(before) if pins.get(n) != before.get(n))
    if not before:
        summary = "all new"
    else:
        summary = ", ".join(f"{n} {before.get(n, 'new')} -> {pins.get(n, 'dropped')}" for n in changed)
    print(
        f"lock: wrote {REQUIREMENTS} ({len(pins)} pins; {summary or 'no pin changed'}) and "
        f"{PYTHON_VERSION} ({project.python}); install them with bash scripts/install.sh",
        file=out,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/lock.py",
        description="Generate requirements.txt and .python-version from pyproject.toml, or check them.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="check the files instead of writing them (CI)")
    mode.add_argument("--upgrade", action="store_true", help="move every pin to the newest release allowed")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check(ROOT)
            for problem in problems:
                print(f"lock --check: {problem}", file=sys.stderr)
            if problems:
                return 1
            print(f"lock --check: {REQUIREMENTS} and {PYTHON_VERSION} fit pyproject.toml")
            return 0
        return lock(ROOT, upgrade=args.upgrade)
    except LockError as exc:
        print(f"lock: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
