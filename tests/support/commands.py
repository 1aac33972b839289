"""Running feedsvc's CLI, and Python code, in child processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent  # the repository


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`feedsvc ARGS` in a child process; its exit status and output (not checked)."""
    return subprocess.run(
        [sys.executable, "-m", "feedsvc.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def in_another_process(script: str) -> bytes:
    """What `script` writes to stdout in a fresh Python with another hash seed and time
    zone, run from the repository (so that it imports tests.support)."""
    env = {"PYTHONHASHSEED": "12345", "TZ": "America/New_York", "PATH": "/usr/bin:/bin"}
    other = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, check=True
    )
    return other.stdout
