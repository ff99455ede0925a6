"""Open an object store by URL or path: S3/MinIO (``s3://``) or a local directory."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import msgspec

from ticktape.schemas.errors import ConfigError
from ticktape.sinks.objectstore.base import ObjectStore
from ticktape.sinks.objectstore.local import LocalObjectStore
from ticktape.sinks.objectstore.s3 import S3Config, S3ObjectStore


def open_store(target: str | os.PathLike[str] | S3Config, *, s3: S3Config | None = None) -> ObjectStore:
    """Open the store named by ``target``.

    * ``s3://bucket/prefix`` -> :class:`~ticktape.sinks.objectstore.s3.S3ObjectStore`; ``s3`` (an
      ``[archive.s3]`` section) supplies the endpoint, region and client settings, the URL
      the bucket and prefix.
    * an ``S3Config`` -> the store it describes.
    * ``file:///dir`` or a plain path -> :class:`~ticktape.sinks.objectstore.local.LocalObjectStore`.

    A malformed or unsupported target raises ``ConfigError``.
    """
    if isinstance(target, S3Config):
        return S3ObjectStore.from_config(target)
    text = os.fspath(target)
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme == "s3":
        if not parsed.netloc or parsed.query or parsed.fragment:
            raise ConfigError(f"expected s3://bucket[/prefix], got {text!r}")
        try:
            base = s3 or S3Config(bucket=parsed.netloc)
            config = msgspec.structs.replace(base, bucket=parsed.netloc, prefix=parsed.path.lstrip("/"))
        except ValueError as exc:
            raise ConfigError(f"{text}: {exc}") from None
        return S3ObjectStore.from_config(config)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file URLs must be local (file:///path), got {text!r}")
        return LocalObjectStore(Path(urllib.parse.unquote(parsed.path)))
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" on Windows is a drive, not a scheme
        raise ConfigError(f"unsupported object store URL {text!r}: expected s3://, file:// or a path")
    return LocalObjectStore(Path(text))
