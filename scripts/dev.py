#!/usr/bin/env python3
"""Set up and run callgate from a fresh clone, with nothing but Python >= 3.11.

    python3 scripts/dev.py serve [callgate serve options]   # the server, on the embedded defaults
    python3 scripts/dev.py test  [pytest options]           # the whole test suite
    python3 scripts/dev.py lint                             # ruff and mypy over the core and the plugins

Each creates ./.venv on first use and installs callgate into it (again whenever a
pyproject.toml changes); `test` and `lint` also install every plugin under plugins/
and the test tools.  Standard library only: this script runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def plugin_dirs() -> list[Path]:
    """The plugin distributions in plugins/ (each a folder with its own pyproject.toml)."""
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def _targets(with_tests: bool) -> list[str]:
    targets = [f"{ROOT}[testing]" if with_tests else str(ROOT)]
    if with_tests:
        targets += [str(p) for p in plugin_dirs()]
    return targets


def _digest(targets: list[str]) -> str:
    digest = hashlib.sha256()
    for target in targets:
        digest.update(target.encode())
        digest.update((Path(target.split("[")[0]) / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def ensure_venv(with_tests: bool) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  (this script runs under any python3, to say so)
        sys.exit(f"callgate needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    targets = _targets(with_tests)
    stamp = VENV / ".callgate-installed"
    installed = stamp.read_text() if stamp.exists() else None
    # What `test` installs holds what `serve` needs: a venv set up for the tests serves as it is.
    if installed == _digest(targets) or (not with_tests and installed == _digest(_targets(True))):
        return
    print("installing callgate" + (" with plugins and test tools" if with_tests else ""), flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    editable = [arg for target in targets for arg in ("-e", target)]
    subprocess.run(pip + editable, check=True)
    stamp.write_text(_digest(targets))


def lint() -> int:
    """ruff over the repository, then mypy over the core and every plugin package.

    The core's import name (``callgate``) differs from its folder (``core/``), and mypy cannot
    follow an editable install's import hook, so mypy reads the packages through a folder of
    symlinks named as they are imported.
    """
    status = subprocess.call([str(BIN / "ruff"), "check", str(ROOT)])
    names = VENV / "typecheck"
    names.mkdir(exist_ok=True)
    packages = {"callgate": ROOT / "core"}
    for plugin in plugin_dirs():
        packages.update({p.name: p for p in plugin.glob("callgate_*") if (p / "__init__.py").exists()})
    for name, folder in packages.items():
        link = names / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(folder, target_is_directory=True)
    mypy = [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml")]
    mypy += [arg for name in sorted(packages) for arg in ("-p", name)]
    env = {**os.environ, "MYPYPATH": str(names)}
    return subprocess.call(mypy, env=env, cwd=ROOT) or status


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("serve", "test", "lint"):
        print(__doc__.strip())
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv(with_tests=command in ("test", "lint"))
    if command == "lint":
        return lint()
    if command == "serve":
        config = [] if "--config" in rest else ["--config", str(ROOT / "config.toml")]
        cmd = [str(BIN / "callgate"), "serve", *config, *rest]
    else:
        tests = [str(ROOT / "tests")] + [str(p / "tests") for p in plugin_dirs() if (p / "tests").is_dir()]
        names_paths = any(Path(ROOT, a.split("::")[0]).exists() for a in rest if not a.startswith("-"))
        cmd = [str(BIN / "python"), "-m", "pytest", *rest, *([] if names_paths else tests)]
    os.chdir(ROOT)
    if os.name == "nt":
        return subprocess.call(cmd)
    # The command takes this process's place (same pid): a signal sent to it (kill, a supervisor's stop) reaches the
    # server or pytest itself, which a child would not get, and would outlive this script holding the port.
    sys.stdout.flush()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
