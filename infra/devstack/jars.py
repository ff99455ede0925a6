"""Server jars from Maven Central (QuestDB, Apache Kafka) and the ``java`` that runs them.

Each JVM server of the stack has a pom under ``maven/<name>/pom.xml`` beside this module
that pins its version. :func:`server_jars` returns the folder holding that server's jars
(with their dependencies), fetching them once with
``mvn -q -B -f <pom> dependency:copy-dependencies -DoutputDirectory=...`` into the cache:
``$TICKTAPE_JARS_DIR``, else ``$XDG_CACHE_HOME/ticktape/jars``, else
``~/.cache/ticktape/jars``. A fetched folder is named after the server and a hash of its
pom, so editing a pom (a new version) fetches again and never mixes jars; it is filled in a
temporary folder and renamed into place, so a folder that exists is complete. Concurrent
fetches (two test runs, ``ticktape dev up``) wait on a lock file. Maven's own repository
(``~/.m2``) caches the downloads too.

``java`` is ``$JAVA_HOME/bin/java`` when ``JAVA_HOME`` is set, else the one on ``PATH``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import BinaryNotFoundError, ServiceError
from ticktape.infra.devstack.process import find_program

#: The servers with a pom, and the artifact whose version names them.
SERVERS: dict[str, str] = {"questdb": "org.questdb:questdb", "kafka": "org.apache.kafka:kafka_2.13"}
POM_DIR = Path(__file__).resolve().parent / "maven"
JAVA_HINT = (
    "install Java 17 or later (`apt-get install openjdk-17-jre-headless`, or run "
    "infra/install-system-deps.sh) or set JAVA_HOME; without a JVM use Tansu: "
    "`ticktape dev up --light`"
)
MVN_HINT = "install Maven (`apt-get install maven`, or run infra/install-system-deps.sh)"
FETCH_TIMEOUT = 900.0


def pom_path(server: str) -> Path:
    """``maven/<server>/pom.xml``; :class:`ServiceError` for an unknown server."""
    if server not in SERVERS:
        raise ServiceError(server, f"no pom: expected one of {', '.join(SERVERS)}")
    return POM_DIR / server / "pom.xml"


def server_version(server: str) -> str:
    """The version of ``server`` pinned in its pom (e.g. ``9.3.4``)."""
    import xml.etree.ElementTree as ET

    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(pom_path(server)).getroot()  # noqa: S314
    group, artifact = SERVERS[server].split(":")
    for dep in root.iterfind("m:dependencies/m:dependency", ns):
        if dep.findtext("m:groupId", namespaces=ns) == group and (
            dep.findtext("m:artifactId", namespaces=ns) == artifact
        ):
            return dep.findtext("m:version", default="", namespaces=ns)
    raise ServiceError(server, f"{pom_path(server)} has no dependency {SERVERS[server]}")


def cache_dir(sub: str, variable: str, env: Mapping[str, str] | None = None) -> Path:
    """``$<variable>`` if set, else ``$XDG_CACHE_HOME/ticktape/<sub>`` (``~/.cache`` without
    ``XDG_CACHE_HOME``)."""
    env = os.environ if env is None else env
    if env.get(variable):
        return Path(env[variable]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "ticktape" / sub


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """Where fetched jars are kept (see the module docstring)."""
    return cache_dir("jars", "TICKTAPE_JARS_DIR", env)


def jar_dir(server: str, env: Mapping[str, str] | None = None) -> Path:
    """The cache folder of ``server``'s jars at its pinned pom (may not exist yet)."""
    digest = hashlib.sha256(pom_path(server).read_bytes()).hexdigest()[:12]
    return cache_root(env) / f"{server}-{server_version(server)}-{digest}"


def java_binary(service: str = "java") -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH; :class:`BinaryNotFoundError` if none."""
    home = os.environ.get("JAVA_HOME", "")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    found = find_program("java")
    if found is None:
        raise BinaryNotFoundError(service, "java", JAVA_HINT)
    return found


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folder if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def server_jars(server: str, *, env: Mapping[str, str] | None = None, fetch: bool = True) -> Path:
    """The folder with ``server``'s jars, fetched with Maven first if missing.

    Raises :class:`BinaryNotFoundError` when ``mvn`` is needed but not installed, and
    :class:`ServiceError` (with Maven's output) when the fetch fails or ``fetch`` is off.
    """
    target = jar_dir(server, env)
    if target.is_dir():
        return target
    if not fetch:
        raise ServiceError(server, f"jars not fetched into {target}: run `ticktape dev fetch`")
    with file_lock(target.parent / f".{server}.lock"):
        if target.is_dir():  # fetched by someone else while we waited
            return target
        mvn = find_program("mvn")
        if mvn is None:
            raise BinaryNotFoundError(server, "mvn", MVN_HINT)
        tmp = Path(tempfile.mkdtemp(prefix=f".{server}-", dir=target.parent))
        try:
            argv = [
                mvn, "-q", "-B", "-f", str(pom_path(server)), "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
            ]  # fmt: skip
            try:
                done = subprocess.run(  # noqa: S603 - fixed argv, our own pom
                    argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT, check=False,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise ServiceError(
                    server, f"`{' '.join(argv)}` did not finish in {FETCH_TIMEOUT:.0f}s"
                ) from None
            jars = sorted(tmp.glob("*.jar"))
            if done.returncode != 0 or not jars:
                output = (done.stdout + done.stderr).strip()[-3000:] or "(no output)"
                raise ServiceError(server, f"`{' '.join(argv)}` failed (exit {done.returncode}):\n{output}")
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def classpath(server: str, *, env: Mapping[str, str] | None = None) -> str:
    """``<jar dir>/*``: every jar of ``server`` for ``java -cp`` (fetched first if missing)."""
    return str(server_jars(server, env=env) / "*")


class JvmService(Service):
    """A server run by Java 17+ from the jars its pom (``server``) brings from Maven Central."""

    server: ClassVar[str]
    ready_timeout = 120.0

    @property
    def version(self) -> str:
        """The server's version pinned in its pom."""
        return server_version(self.server)

    def java_argv(self, options: Sequence[str], main: str, *args: str) -> list[str]:
        """``java <options> -cp <the server's jars> <main> <args>``."""
        return [java_binary(self.name), *options, "-cp", classpath(self.server), main, *args]
