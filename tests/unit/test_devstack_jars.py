"""Where the JVM servers' jars come from: the pinned poms and the cache folder (no Maven run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticktape.infra.devstack import jars
from ticktape.infra.devstack.errors import ServiceError


def test_the_poms_pin_the_server_versions() -> None:
    assert jars.server_version("questdb").startswith("9.")
    assert jars.server_version("kafka").startswith("4.")
    for server in jars.SERVERS:
        assert jars.pom_path(server).is_file()
    with pytest.raises(ServiceError, match="expected one of questdb, kafka"):
        jars.pom_path("zookeeper")


def test_cache_folder_from_env_xdg_or_home() -> None:
    assert jars.cache_root({"TICKTAPE_JARS_DIR": "/opt/jars"}) == Path("/opt/jars")
    assert jars.cache_root({"XDG_CACHE_HOME": "/c"}) == Path("/c/ticktape/jars")
    assert jars.cache_root({}) == Path.home() / ".cache" / "ticktape" / "jars"


def test_jar_folder_names_the_version_and_the_pom(tmp_path: Path) -> None:
    env = {"TICKTAPE_JARS_DIR": str(tmp_path)}
    folder = jars.jar_dir("kafka", env)
    assert folder.parent == tmp_path
    assert folder.name.startswith(f"kafka-{jars.server_version('kafka')}-")
    assert jars.jar_dir("kafka", env) == folder  # stable for the same pom
    assert jars.jar_dir("questdb", env) != folder


def test_unfetched_jars_without_fetching_say_how(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="ticktape dev fetch"):
        jars.server_jars("questdb", env={"TICKTAPE_JARS_DIR": str(tmp_path)}, fetch=False)


def test_a_fetched_folder_is_used_as_it_is(tmp_path: Path) -> None:
    env = {"TICKTAPE_JARS_DIR": str(tmp_path)}
    folder = jars.jar_dir("questdb", env)
    folder.mkdir(parents=True)
    (folder / "questdb.jar").write_bytes(b"")
    assert jars.server_jars("questdb", env=env) == folder
    assert jars.classpath("questdb", env=env) == f"{folder}/*"
