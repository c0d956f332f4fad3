"""Run Celery's integration suite (test_tasks.py, test_canvas.py) plain and on queueprio, and compare.

    python -m tools.celery_suite [--only plain|queueprio] [-k EXPR] [--timeout S] [-- PYTEST_ARGS...]

Gets the sdist of the installed Celery with pip into ``var/celery-suite/``, installs
``requirements/celery-suite.txt`` if anything in it is missing, then per mode: a fresh RabbitMQ
vhost (deleted afterwards), a flushed Redis DB for results, one pytest run of the suite's own
files with ``tools.celery_suite.plugin``. Writes ``var/celery-suite/<mode>.json`` (test id ->
outcome, first error line), ``<mode>.xml`` (JUnit), ``<mode>.log`` and ``summary.json``, and
prints the counts and the regressions: tests that pass plain and fail or error on queueprio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "var" / "celery-suite"
REQUIREMENTS = REPO / "requirements" / "celery-suite.txt"
SUITE_FILES = ("t/integration/test_tasks.py", "t/integration/test_canvas.py")
MODES = ("plain", "queueprio")
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
BAD = ("failed", "error")
#: A test whose body ran green: an xfail-marked test can pass (non-strict xfail).
GOOD = ("passed", "xpassed")


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def ensure_requirements() -> None:
    """Install requirements/celery-suite.txt unless every pin in it is already installed."""
    pins = [line.split("==") for line in REQUIREMENTS.read_text().splitlines() if "==" in line]
    missing = []
    for name, version in pins:
        try:
            installed = metadata.version(name.strip())
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version.strip():
            missing.append(name.strip())
    if missing:
        print(f"==> installing {REQUIREMENTS.relative_to(REPO)} (missing: {', '.join(missing)})", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)


def ensure_sdist() -> Path:
    """The unpacked sdist of the installed Celery, downloaded with pip the first time."""
    version = metadata.version("celery")
    target = OUT / f"celery-{version}"
    if (target / "t" / "integration" / "conftest.py").is_file():
        return target
    dist = OUT / "dist"
    print(f"==> pip download celery=={version} (sdist)", flush=True)
    pip_download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    run([*pip_download, "--dest", str(dist), f"celery=={version}"])
    with tarfile.open(dist / f"celery-{version}.tar.gz") as archive:
        archive.extractall(OUT, filter="data")
    return target


def plain_settings() -> str:
    """queueprio's delivery settings, as Celery settings in JSON, for the plain run (see the plugin)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tools.celery_suite.settings")
    from queueprio.wiring import defaults  # no models: it reads only queueprio's settings

    from .plugin import WORKER_SEMANTICS

    return json.dumps({key: value for key, value in defaults().items() if key in WORKER_SEMANTICS})


def flush_redis(url: str) -> None:
    import redis  # installed by ensure_requirements

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        raise SystemExit(f"error: Redis does not answer at {url} ({exc}); start redis-server") from exc
    finally:
        client.close()


def run_mode(mode: str, sdist: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One pytest run of the suite in ``mode``, in its own vhost; returns the plugin's results."""
    vhost = f"celery-suite-{mode}-{os.getpid()}"
    backend = f"{args.redis}/{args.redis_db}"
    results, log = OUT / f"{mode}.json", OUT / f"{mode}.log"
    results.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    env.update(
        TEST_BROKER=f"{args.broker}/{vhost}",
        TEST_BACKEND=backend,
        CELERY_SUITE_MODE=mode,
        CELERY_SUITE_RESULTS=str(results),
        PYTHONPATH=str(REPO),  # the plugin and settings; the suite's t/ is appended by pytest
        QUEUEPRIO_VAR_DIR=str(OUT),
        CELERY_SUITE_PLAIN_SETTINGS=args.plain_settings,
    )
    if mode == "queueprio":
        db = OUT / "queueprio.sqlite3"
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)
        env.update(DJANGO_SETTINGS_MODULE="tools.celery_suite.settings", CELERY_SUITE_DB=str(db))
    cmd = [sys.executable, "-P", "-m", "pytest", *SUITE_FILES]  # -P: the cwd is the sdist, with its own celery/
    # Ours after Celery's, so our celery_parameters wins; pytest-django would block the ledger's DB.
    for plugin in ("celery.contrib.pytest", "tools.celery_suite.plugin", "no:django", "no:cacheprovider"):
        cmd += ["-p", plugin]
    # append: the sdist's own celery/ package must not shadow the installed one.
    cmd += [
        "--import-mode=append",
        f"--timeout={args.timeout}",
        f"--max-reruns={args.max_reruns}",
        f"--junitxml={OUT / f'{mode}.xml'}",
        "-q",
        "-rfE",
    ]
    cmd += (["-k", args.k] if args.k else []) + args.pytest_args
    run(["rabbitmqctl", "add_vhost", vhost], timeout=60)
    started = time.monotonic()
    try:
        run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], timeout=60)
        flush_redis(backend)
        print(f"==> {mode}: vhost {vhost}, results in {backend}, log {log.relative_to(REPO)}", flush=True)
        with log.open("w") as out:
            code = subprocess.run(cmd, cwd=sdist, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    finally:
        run(["rabbitmqctl", "delete_vhost", vhost], timeout=60)
    elapsed = round(time.monotonic() - started, 1)
    data: dict[str, Any] = json.loads(results.read_text()) if results.exists() else {"mode": mode, "tests": {}}
    data.update(pytest_exit_code=code, wall_s=elapsed, k=args.k)
    results.write_text(json.dumps(data, indent=1) + "\n")
    print(f"==> {mode}: pytest exited {code} after {elapsed:.0f} s", flush=True)
    return data


def counts(data: dict[str, Any]) -> Counter[str]:
    return Counter(entry["outcome"] for entry in data["tests"].values())


def cause(message: str) -> str:
    """An error line with ids and numbers blanked, to group regressions that failed the same way."""
    message = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", message)
    return re.sub(r"\d+(\.\d+)?", "N", message)[:160]


def summarize(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    print(f"\nCelery {metadata.version('celery')} integration suite: {', '.join(SUITE_FILES)}")
    print(f"{'mode':<10}" + "".join(f"{o:>9}" for o in (*OUTCOMES, "total")) + "   exit   time")
    for mode, data in runs.items():
        tally = counts(data)
        cells = "".join(f"{tally[o]:>9}" for o in OUTCOMES) + f"{sum(tally.values()):>9}"
        print(f"{mode:<10}{cells}   {data.get('pytest_exit_code', '?'):>4} {data.get('wall_s', 0) / 60:5.1f} min")
    summary: dict[str, Any] = {mode: dict(counts(data)) for mode, data in runs.items()}
    plain, prio = runs.get("plain"), runs.get("queueprio")
    if plain is not None:
        baseline = {t: e for t, e in plain["tests"].items() if e["outcome"] in BAD}
        summary["plain_failures"] = {t: e["message"] for t, e in baseline.items()}
        print(f"\nFail on plain (baseline; timing on a shared machine, or the suite itself): {len(baseline)}")
        for test, entry in baseline.items():
            print(f"  {test}\n      {entry['outcome']}: {entry['message']}")
    if plain is not None and prio is not None:
        regressions = {
            t: e
            for t, e in prio["tests"].items()
            if e["outcome"] in BAD and plain["tests"].get(t, {}).get("outcome") in GOOD
        }
        summary["regressions"] = {t: e["message"] for t, e in regressions.items()}
        print(f"\nRegressions (pass or xpass plain, fail or error on queueprio): {len(regressions)}")
        for test, entry in regressions.items():
            print(f"  {test}\n      {entry['outcome']}: {entry['message']}")
        groups: dict[str, list[str]] = defaultdict(list)
        for test, entry in regressions.items():
            groups[cause(entry["message"])].append(test)
        print("\nRegressions by first error line:")
        for message, tests in sorted(groups.items(), key=lambda item: -len(item[1])):
            print(f"  {len(tests):>3}  {message}")
        fixed = [t for t, e in prio["tests"].items() if e["outcome"] == "passed" and t in summary["plain_failures"]]
        summary["pass_only_on_queueprio"] = fixed
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\nResults: {OUT.relative_to(REPO)}/{{plain,queueprio}}.json, .xml, .log and summary.json")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.celery_suite", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=MODES, help="run one mode; the other's last results are compared")
    parser.add_argument("--report", action="store_true", help="run nothing: the summary of the last results")
    parser.add_argument("-k", help="pytest -k expression, passed through")
    parser.add_argument("--timeout", type=float, default=120, help="per-test timeout in seconds (pytest-timeout)")
    parser.add_argument("--max-reruns", type=int, default=1, help="cap on the suite's flaky(reruns=5)")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672", help="RabbitMQ, without vhost")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis, without DB number")
    parser.add_argument("--redis-db", type=int, default=11, help="Redis DB for results, flushed before each run")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    args = parser.parse_args(argv)
    # Stopped from outside: still delete the vhost (subprocess.run kills pytest on the way out).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.report:
        ensure_requirements()
        sdist = ensure_sdist()
        args.plain_settings = plain_settings()
    runs: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        if args.only in (None, mode) and not args.report:
            runs[mode] = run_mode(mode, sdist, args)
        elif (OUT / f"{mode}.json").exists():
            runs[mode] = json.loads((OUT / f"{mode}.json").read_text())
            print(f"==> {mode}: last results from {OUT.relative_to(REPO)}/{mode}.json (k={runs[mode].get('k')})")
    summarize(runs)
    return 0 if all(data.get("pytest_exit_code") in (0, 1) for data in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
