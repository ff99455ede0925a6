"""The Quix Streams peer runs apart from ticktape: a standalone script that imports only
``quixstreams`` and the standard library, with the Python of a virtualenv of its own
(made on first use, where ``TICKTAPE_PEERS_DIR`` says), so ticktape's environment keeps
its own ``confluent-kafka``. The bench test that runs the peer is ``tests/bench/test_peers.py``."""

from __future__ import annotations

import ast
import json
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ticktape.infra.bench.peers import quix_peer, quix_venv
from ticktape.infra.bench.peers.quix import PEER_SCRIPT
from ticktape.infra.devstack.errors import ServiceError


def test_the_peer_script_imports_only_quixstreams_and_the_standard_library() -> None:
    tree = ast.parse(PEER_SCRIPT.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import would need ticktape beside it"
            roots.add((node.module or "").split(".")[0])
    assert "quixstreams" in roots
    assert roots - {"quixstreams"} <= sys.stdlib_module_names, roots


def test_quixstreams_is_not_installed_beside_ticktape() -> None:
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("quixstreams")
    major, minor, *_ = metadata.version("confluent-kafka").split(".")
    assert (int(major), int(minor)) >= (2, 13)  # what quixstreams would have held us below


def test_the_virtualenv_lives_where_the_environment_says() -> None:
    assert quix_venv.venv_dir({"TICKTAPE_PEERS_DIR": "/opt/peers"}) == Path("/opt/peers/quix-venv")
    assert quix_venv.venv_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/ticktape/peers/quix-venv")
    assert quix_venv.venv_dir({}) == Path.home() / ".cache" / "ticktape" / "peers" / "quix-venv"


def made(venv: Path, **marker: str) -> None:
    """A virtualenv folder as quix_python leaves it (its marker written last)."""
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / quix_venv.MARKER).write_text(json.dumps(quix_venv._wanted() | marker))


def test_a_made_virtualenv_is_used_as_it_is(tmp_path: Path) -> None:
    made(tmp_path / "quix-venv")
    python = quix_venv.quix_python({"TICKTAPE_PEERS_DIR": str(tmp_path)}, base_python="/bin/false")
    assert python == tmp_path / "quix-venv" / "bin" / "python"


@pytest.mark.parametrize(
    "marker",
    [{"quixstreams": "0.0.1"}, {"python": "2.7"}, None],
    ids=["other pin", "other python", "cut short"],
)
def test_a_stale_or_unfinished_virtualenv_is_made_again(
    tmp_path: Path, marker: dict[str, str] | None
) -> None:
    venv = tmp_path / "quix-venv"
    if marker is None:
        (venv / "bin").mkdir(parents=True)  # pip never finished: no marker
    else:
        made(venv, **marker)
    with pytest.raises(ServiceError) as err:  # /bin/false cannot make one: proves it tried
        quix_venv.quix_python({"TICKTAPE_PEERS_DIR": str(tmp_path)}, base_python="/bin/false")
    assert "`python -m venv` failed" in str(err.value)
    assert not (venv / quix_venv.MARKER).exists()


def test_a_virtualenv_that_cannot_be_made_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ServiceError) as err:
        quix_venv.quix_python({"TICKTAPE_PEERS_DIR": str(tmp_path)}, base_python="/bin/false")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"quix peer: cannot create its virtualenv {tmp_path / 'quix-venv'}: ")
    assert text.endswith("(TICKTAPE_PEERS_DIR sets where it goes)")

    (tmp_path / "file").write_text("")  # a peers folder under a file cannot be made
    with pytest.raises(ServiceError) as err:
        quix_venv.quix_python({"TICKTAPE_PEERS_DIR": str(tmp_path / "file" / "peers")})
    assert "\n" not in str(err.value)
    assert "cannot create its virtualenv" in str(err.value)
    assert str(err.value).endswith("(set TICKTAPE_PEERS_DIR to a writable folder)")


def test_the_peer_windows_like_ticktapes_default_candles() -> None:
    # The script cannot import ticktape's config, so its constants are held to it here.
    from ticktape.flows.steps.candles import CandleConfig

    defaults = CandleConfig()
    assert tuple(int(iv.seconds) for iv in defaults.intervals) == quix_peer.INTERVALS_S
    assert defaults.grace == quix_peer.GRACE_MS * 1_000_000
