"""Child processes of the recorder tests: a recording child script and a free local port."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

CHILD = str(Path(__file__).resolve().parents[1] / "test_record" / "record_child.py")


def spawn(*args: object) -> subprocess.Popen[str]:
    """Start ``record_child.py`` with ``args`` (its mode first), stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, CHILD, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for the gloo rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
