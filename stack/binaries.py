"""Where the Prometheus and Alertmanager binaries are."""
from __future__ import annotations

import os
import shutil

from stack.process import StackError


def find_binary(env_var: str, *names: str) -> str:
    """The binary named by env_var, else the first of names found on PATH."""
    explicit = os.environ.get(env_var)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise StackError(f"{env_var}={explicit} is not an executable file")
        return explicit
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise StackError(f"none of {', '.join(names)} on PATH; install the Debian package "
                     f"or set {env_var}")


def prometheus_bin() -> str:
    """Path of the prometheus binary."""
    return find_binary("PROMETHEUS_BIN", "prometheus")


def alertmanager_bin() -> str:
    """Path of the alertmanager binary."""
    return find_binary("ALERTMANAGER_BIN", "prometheus-alertmanager", "alertmanager")
