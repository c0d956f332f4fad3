"""Follow the README's "Add queueprio to your project" section literally, step by step.

Each step is a fenced block preceded by an HTML comment the rendered README doesn't show:

* ``<!-- readme-step: run -->``: shell commands, one a line, run in the project directory;
* ``<!-- readme-step: append PATH -->`` / ``create PATH``: the block's text added to, or written as, PATH;
* ``<!-- readme-step: shell -->``: Python fed to ``python manage.py shell``;
* ``<!-- readme-step: worker -->``: the command that starts a worker, left running.

Nothing is rewritten except one thing a test must change: ``install`` replaces the package name
given to pip with the wheel under test. Used by ``tests/install/test_readme.py``; also runnable
by hand to time the steps (``python tests/install/readme_steps.py --help``).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Add queueprio to your project"
STEP = re.compile(r"<!-- readme-step: (\w+)(?: (\S+))? -->\s*\n\s*```\w*\n(.*?)\n\s*```", re.S)
#: What the README installs, and what the tests install instead.
PACKAGE = '"queueprio[tasks]"'


@dataclass(frozen=True)
class Step:
    action: str
    target: str | None
    text: str


def section(readme: str) -> str:
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    return readme[start : end if end != -1 else None]


def steps(readme: str) -> list[Step]:
    """The section's steps in order, each block un-indented (the README nests them in a list)."""
    found = []
    for action, target, block in STEP.findall(section(readme)):
        lines = block.splitlines()
        indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
        found.append(Step(action, target or None, "\n".join(line[indent:] for line in lines) + "\n"))
    return found


@dataclass
class Project:
    """A project directory and the environment the user's shell would have (the venv first on PATH)."""

    directory: Path
    venv: Path
    env: dict[str, str]
    install: str = PACKAGE  # what `pip install` gets instead of the README's package name
    timeout: float = 600

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        command = command.replace(PACKAGE, shlex.quote(self.install))
        done = subprocess.run(  # noqa: S602  # the README's lines, run as a user types them in a shell
            command,
            shell=True,
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"`{command}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def apply(self, step: Step) -> str:
        """Carry out one step (a ``worker`` step is the caller's: it keeps running); returns its output."""
        if step.action == "run":
            outputs = [self.run(line) for line in commands(step.text)]
            return "".join(done.stdout + done.stderr for done in outputs)
        if step.action in ("append", "create"):
            path = self.directory / str(step.target)
            path.parent.mkdir(parents=True, exist_ok=True)
            before = path.read_text() if step.action == "append" and path.exists() else ""
            path.write_text(before + ("\n" if before and not before.endswith("\n") else "") + step.text)
            return ""
        if step.action == "shell":
            done = subprocess.run(
                [str(self.venv / "bin" / "python"), "manage.py", "shell"],
                input=step.text,
                cwd=self.directory,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
            if done.returncode != 0 or "Traceback" in done.stderr:
                raise RuntimeError(f"manage.py shell failed:\n{done.stdout}\n{done.stderr}")
            return done.stdout
        raise ValueError(f"unknown step {step.action!r}")

    def start_worker(self, step: Step, log: Path) -> subprocess.Popen[bytes]:
        [command] = commands(step.text)
        with open(log, "wb") as out:
            return subprocess.Popen(
                shlex.split(command),
                cwd=self.directory,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def commands(text: str) -> list[str]:
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def new_project(base: Path, python: str, env: dict[str, str]) -> Project:
    """A fresh virtualenv with nothing in it, and ``django-admin startproject mysite`` made with it.

    Django comes from the package's own dependencies: the venv gets Django alone first, to run
    startproject as a user who already has a project would have, then the README's install step.
    """
    venv = base / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
    directory = base / "mysite"
    directory.mkdir()
    project = Project(directory, venv, env)
    project.run('python -m pip install --quiet "Django>=5.2,<6"')
    project.run("django-admin startproject mysite .")
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True, help="the queueprio wheel to install instead of the package name")
    parser.add_argument("--dir", default=None, help="where to make the project (default: a temporary directory)")
    args = parser.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="queueprio-readme-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    started = time.monotonic()
    project = new_project(base, sys.executable, env)
    project.install = f"queueprio[tasks] @ {Path(args.wheel).resolve().as_uri()}"
    print(f"venv + startproject: {time.monotonic() - started:.1f}s")
    for number, step in enumerate(steps((ROOT / "README.md").read_text()), 1):
        if step.action == "worker":
            print(f"step {number}: worker command (run it yourself): {step.text.strip()}")
            continue
        began = time.monotonic()
        project.apply(step)
        print(f"step {number}: {step.action} {step.target or ''} {time.monotonic() - began:.1f}s")
    print(f"project in {project.directory}")


if __name__ == "__main__":
    main()
