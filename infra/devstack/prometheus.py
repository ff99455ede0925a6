"""Metrics: a local ``prometheus`` server (Debian package) and its scrape configuration.

:class:`PrometheusServer` takes a scrape config as YAML text or a path; without one it
generates a config that scrapes itself, the static ``targets`` given, and any file-based
targets dropped into ``<work_dir>/targets/*.json`` later (picked up within seconds, no
restart), which is how ``ticktape dev up`` lets a running job register its metrics port.
Configs are checked with ``promtool check config`` when promtool is installed.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ticktape.infra.devstack import ports
from ticktape.infra.devstack.base import Service
from ticktape.infra.devstack.errors import APT_HINT, BinaryNotFoundError, ServiceError
from ticktape.infra.devstack.http import get_json, http_get, http_post
from ticktape.infra.devstack.process import find_program


def _check_targets(targets: Iterable[str]) -> list[str]:
    checked = list(targets)
    for target in checked:
        if not target.startswith(f"{ports.LOOPBACK}:"):
            raise ValueError(f"scrape target: expected {ports.LOOPBACK}:<port>, got {target!r}")
    return checked


def scrape_config(
    targets: Iterable[str] = (),
    *,
    job: str = "ticktape",
    interval: str = "1s",
    self_address: str | None = None,
    file_sd_dir: Path | None = None,
) -> str:
    """Build a Prometheus config (YAML; JSON is valid YAML) scraping loopback targets.

    ``targets`` are ``127.0.0.1:<port>`` strings scraped as ``job``; ``self_address``
    adds a ``prometheus`` job for the server itself; ``file_sd_dir`` adds file-based
    discovery of ``<file_sd_dir>/*.json`` for ``job``.
    """
    job_cfg: dict[str, Any] = {
        "job_name": job,
        "static_configs": [{"targets": _check_targets(targets)}],
    }
    if file_sd_dir is not None:
        job_cfg["file_sd_configs"] = [{"files": [str(file_sd_dir / "*.json")], "refresh_interval": "2s"}]
    jobs: list[dict[str, Any]] = [job_cfg]
    if self_address is not None:
        jobs.insert(0, {"job_name": "prometheus", "static_configs": [{"targets": [self_address]}]})
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": jobs,
    }
    return json.dumps(config, indent=2) + "\n"


class PrometheusServer(Service):
    """``prometheus`` on 127.0.0.1, TSDB and config under its work directory."""

    kind = "prometheus"

    def __init__(
        self,
        state_dir: str | Path,
        scrape_config: str | Path | None = None,
        *,
        targets: Sequence[str] = (),
        interval: str = "1s",
        name: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(state_dir, name=name, port=port)
        self.scrape_source = scrape_config
        self.targets = _check_targets(targets)
        self.interval = interval

    @property
    def config_path(self) -> Path:
        """The config file the server runs with."""
        return self.work_dir / "prometheus.yml"

    @property
    def targets_dir(self) -> Path:
        """Directory of file-discovered targets (generated config only)."""
        return self.work_dir / "targets"

    def argv(self, port: int) -> list[str]:
        binary = find_program("prometheus")
        if binary is None:
            raise BinaryNotFoundError(self.name, "prometheus", APT_HINT)
        return [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
            f"--web.listen-address={ports.LOOPBACK}:{port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            "--log.level=info",
        ]

    def prepare(self, port: int) -> None:
        super().prepare(port)
        if isinstance(self.scrape_source, Path):
            text = self.scrape_source.read_text()
        elif isinstance(self.scrape_source, str):
            text = self.scrape_source
        else:
            self.targets_dir.mkdir(parents=True, exist_ok=True)
            text = scrape_config(
                self.targets, interval=self.interval,
                self_address=f"{ports.LOOPBACK}:{port}", file_sd_dir=self.targets_dir,
            )  # fmt: skip
        self.config_path.write_text(text)
        self.check_config(self.config_path)

    def check_config(self, path: Path) -> None:
        """Run ``promtool check config`` on ``path`` (skipped if promtool is missing)."""
        promtool = find_program("promtool")
        if promtool is None:
            return
        result = subprocess.run(  # noqa: S603
            [promtool, "check", "config", str(path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(self.name, f"invalid config {path}:\n{result.stdout}{result.stderr}".rstrip())

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def env(self) -> dict[str, str]:
        return {"TICKTAPE_PROMETHEUS_URL": self.url}

    def probe(self) -> None:
        http_get(f"{self.url}/-/ready", timeout=2.0, ok_only=True)

    # -- API helpers -------------------------------------------------------------------

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result`` (``[{"metric": {...}, "value": [...]}]``)."""
        qs = urllib.parse.urlencode({"query": expr})
        answer = get_json(f"{self.url}/api/v1/query?{qs}")
        if answer.get("status") != "success":
            raise ServiceError(self.name, f"query {expr!r} failed: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def active_targets(self) -> list[dict[str, Any]]:
        """The scrape targets Prometheus knows, with their health and last error."""
        answer = get_json(f"{self.url}/api/v1/targets?state=active")
        result: list[dict[str, Any]] = answer["data"]["activeTargets"]
        return result

    def add_targets(self, targets: Sequence[str], *, group: str = "ticktape") -> Path:
        """Register loopback targets through file discovery (generated config only)."""
        path = self.targets_dir / f"{group}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": _check_targets(targets)}]))
        tmp.replace(path)
        return path

    def reload(self) -> None:
        """Ask the server to re-read its config file (``--web.enable-lifecycle``)."""
        http_post(f"{self.url}/-/reload", b"", timeout=10.0)
