"""The Quix Streams peer's own virtualenv, made on first use.

``quixstreams`` pins ``confluent-kafka`` below what ticktape is built and tested on, so it
is not a dependency of the project: the peer (:mod:`.quix_peer`) runs in a virtualenv of
its own, ``python -m venv`` + ``pip install quixstreams==``:data:`QUIXSTREAMS_VERSION`
(the one place its version is pinned), under ``$TICKTAPE_PEERS_DIR``, else
``$XDG_CACHE_HOME/ticktape/peers``, else ``~/.cache/ticktape/peers``, as ``quix-venv``.

The virtualenv counts as made only when its marker file (written last) names the pinned
version and the Python it was made with; otherwise (a first use, a new pin, an install cut
short) it is removed and made again. Concurrent benches wait on a lock file. A
virtualenv that cannot be made raises :class:`~ticktape.infra.devstack.errors.ServiceError`
with one line saying where and why (pip's last line).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ticktape.infra.devstack.errors import ServiceError
from ticktape.infra.devstack.jars import cache_dir, file_lock

#: The Quix Streams release the peer runs (pinned here only).
QUIXSTREAMS_VERSION = "3.28.1"
#: The virtualenv's folder under :func:`peers_root`.
VENV_NAME = "quix-venv"
#: Written into the virtualenv after pip succeeded: what it was made with.
MARKER = "ticktape-peer.json"
SERVICE = "quix peer"
CREATE_TIMEOUT = 900.0


def peers_root(env: Mapping[str, str] | None = None) -> Path:
    """Where the peers' virtualenvs are kept (see the module docstring)."""
    return cache_dir("peers", "TICKTAPE_PEERS_DIR", env)


def venv_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Quix peer's virtualenv (may not exist yet)."""
    return peers_root(env) / VENV_NAME


def _wanted() -> dict[str, str]:
    return {"quixstreams": QUIXSTREAMS_VERSION, "python": f"{sys.version_info[0]}.{sys.version_info[1]}"}


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ready(venv: Path) -> bool:
    try:
        made = json.loads((venv / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(made == _wanted() and _python(venv).exists())


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _step(
    argv: list[str], what: str, venv: Path, hint: str = "TICKTAPE_PEERS_DIR sets where it goes"
) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CREATE_TIMEOUT, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _failed(venv, what, str(exc).replace("\n", " "), hint) from None
    if done.returncode != 0:
        raise _failed(venv, what, _last_line(done.stderr or done.stdout), hint)


def _failed(
    venv: Path, what: str, why: str, hint: str = "TICKTAPE_PEERS_DIR sets where it goes"
) -> ServiceError:
    return ServiceError(SERVICE, f"cannot create its virtualenv {venv}: `{what}` failed: {why} ({hint})")


def quix_python(env: Mapping[str, str] | None = None, *, base_python: str | None = None) -> Path:
    """The Python of the Quix peer's virtualenv, made first if missing or stale.

    ``base_python`` makes the virtualenv (default: the interpreter running ticktape).
    Raises :class:`ServiceError` (one line) when it cannot be made.
    """
    venv = venv_dir(env)
    if _ready(venv):
        return _python(venv)
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _failed(
            venv, f"mkdir {venv.parent}", str(exc), "set TICKTAPE_PEERS_DIR to a writable folder"
        ) from None
    with file_lock(venv.parent / f".{VENV_NAME}.lock"):
        if _ready(venv):  # made by someone else while we waited
            return _python(venv)
        shutil.rmtree(venv, ignore_errors=True)
        _step([base_python or sys.executable, "-m", "venv", str(venv)], "python -m venv", venv)
        pin = f"quixstreams=={QUIXSTREAMS_VERSION}"
        pip = [str(_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check", pin]
        _step(pip, f"pip install {pin}", venv, "it needs PyPI once; TICKTAPE_PEERS_DIR sets where it goes")
        (venv / MARKER).write_text(json.dumps(_wanted()), encoding="utf-8")
    return _python(venv)
