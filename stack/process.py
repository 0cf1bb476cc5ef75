"""Child processes of the stack: start in their own process group, wait until ready, stop for sure."""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

# Every process still running is stopped when the interpreter exits, even if a
# test or the demo died before its context manager could clean up.
_LIVE: set["ManagedProcess"] = set()


class StackError(RuntimeError):
    """A stack component failed to start, answer or stop."""


class ManagedProcess:
    """One child process with its log file, readiness probe and bounded shutdown."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        """Start the process as the leader of a new process group so that the whole group can be killed."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True)
        _LIVE.add(self)
        return self

    @property
    def pid(self) -> int | None:
        """Process id, or None before start."""
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        """Last lines of the process log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, message: str) -> StackError:
        """A StackError carrying the log tail, for a readable test or demo failure."""
        code = self.popen.poll() if self.popen else None
        state = f"exited with {code}" if code is not None else "still running"
        return StackError(f"{self.name}: {message} ({state}); log {self.log_path}:\n{self.tail()}")

    def wait_ready(self, url: str, timeout: float = 30.0, headers: dict | None = None) -> None:
        """Poll url until it answers 200; fail fast if the process exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                raise self.failure(f"exited before {url} was ready")
            try:
                response = httpx.get(url, timeout=2.0, headers=headers)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last = type(error).__name__
            time.sleep(0.1)
        raise self.failure(f"{url} not ready after {timeout:.0f} s (last: {last})")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited in time."""
        _LIVE.discard(self)
        if self.popen is None or self.popen.returncode is not None:
            return
        _signal_group(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5.0)

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid})"


def _signal_group(pid: int, sig: int) -> None:
    """Signal a process group, ignoring one that is already gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    """Stop every process still running (atexit safety net)."""
    for process in list(_LIVE):
        process.stop(timeout=5.0)


atexit.register(stop_all)
