"""The S3 object store (AWS S3, MinIO, moto) on boto3, with the ``ObjectStore`` contract.

Guarantees on top of S3's own (a single PUT is atomic; read-after-write is consistent):

* ``put`` refuses data whose SHA-256 is not ``sha256_hex`` before any I/O, sends that
  checksum with the object (``x-amz-checksum-sha256``: S3 and MinIO reject a body that
  does not match it) and fails unless the response echoes it. Objects are single-part
  (up to ``max_single_put``, 256 MiB by default): multipart checksums are checksums of
  part checksums, not comparable with the caller's.
* ``head`` returns the stored full-object SHA-256 (``ChecksumMode=ENABLED``); an object
  stored without one (by another tool) is downloaded and hashed. ``get`` has botocore
  verify the bytes against the stored checksum.
* Connection failures, timeouts, 5xx, 429 and throttling codes raise
  ``TransientStoreError``; anything else ``ArchiveError`` naming the operation, bucket,
  key and AWS error code. Credentials come only from boto3's standard chain.

botocore retries little (``max_attempts`` counts every attempt, default 2): ``ticktape.sinks.objectstore.retry``
does backoff with jitter. boto3 is imported lazily: ``S3Config`` imports without it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal, cast

import msgspec

from ticktape.schemas.bounds import between
from ticktape.schemas.durations import Duration, PositiveDuration
from ticktape.schemas.errors import ArchiveError, ConfigError, MissingDependencyError
from ticktape.sinks.objectstore import base
from ticktape.sinks.objectstore.base import ObjectInfo, TransientStoreError

__all__ = ["S3Config", "S3ObjectStore", "translate_error"]

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType as LocationType
    from mypy_boto3_s3.type_defs import CreateBucketConfigurationTypeDef, HeadObjectOutputTypeDef

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests",
     "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable"}
)  # fmt: skip
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
_NETWORK = (ConnectionError, TimeoutError)  # raw socket errors that escape botocore
_CHUNK = 1 << 20


class S3Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[archive.s3]``: where the archive lives and how the client behaves.

    ``region`` None lets boto3 resolve it (``AWS_REGION``, profile, ...). ``endpoint_url``
    points at MinIO or moto (``http://127.0.0.1:9000``); never put credentials in it.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    create_bucket: bool = False
    connect_timeout: PositiveDuration = PositiveDuration.parse("5s")
    read_timeout: PositiveDuration = PositiveDuration.parse("60s")
    max_attempts: Annotated[int, between(1, 10)] = 2
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    max_single_put: Annotated[int, between(1, 5 * 1024**3)] = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if not _BUCKET.match(self.bucket) or ".." in self.bucket:
            raise ValueError(f"bucket: expected an S3 bucket name (3-63 of [a-z0-9.-]), got {self.bucket!r}")
        try:
            base.check_prefix(self.prefix)
        except ArchiveError as exc:
            raise ValueError(f"prefix: {exc}") from None
        if self.endpoint_url is not None and not re.match(r"^https?://[^/@\s]+(/.*)?$", self.endpoint_url):
            # (the value is not echoed: it could hold credentials)
            raise ValueError("endpoint_url: expected http(s)://host[:port] without credentials in it")
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not isinstance(value, Duration) or value <= 0:
                raise ValueError(f"{name}: expected a positive Duration like '5s', got {value!r}")
        if not 1 <= self.max_attempts <= 10:
            raise ValueError(f"max_attempts: expected 1..10, got {self.max_attempts}")
        if not 0 < self.max_single_put <= 5 * 1024**3:
            raise ValueError(f"max_single_put: expected 1 byte..5 GiB, got {self.max_single_put}")


def _describe_client_error(exc: object) -> tuple[str, int]:
    response = getattr(exc, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", "") or "Unknown")
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def translate_error(exc: Exception, what: str) -> ArchiveError:
    """Map a boto3/botocore (or socket) exception to ``TransientStoreError``/``ArchiveError``."""
    from botocore import exceptions as bex

    if isinstance(exc, bex.ClientError):
        code, status = _describe_client_error(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        text = f"{what}: {code} (HTTP {status}){': ' + message if message else ''}"
        if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
            return TransientStoreError(text)
        return ArchiveError(text)
    if isinstance(exc, (bex.ConnectionError, bex.HTTPClientError, bex.IncompleteReadError, *_NETWORK)):
        return TransientStoreError(f"{what}: {type(exc).__name__}: {exc}")
    return ArchiveError(f"{what}: {type(exc).__name__}: {exc}")


class S3ObjectStore:
    """An ``ObjectStore`` on an S3 bucket; keys are stored as ``prefix + key``.

    ``config`` supplies the client settings (timeouts, attempts, addressing style,
    ``max_single_put``); the other arguments say where the objects are. Use
    :meth:`from_config` to take everything from an ``[archive.s3]`` section. ``client``
    replaces the boto3 client (its region is then the client's).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        create_bucket: bool = False,
        client: S3Client | None = None,
        config: S3Config | None = None,
    ) -> None:
        try:
            settings = msgspec.structs.replace(
                config or S3Config(bucket=bucket),
                bucket=bucket,
                prefix=prefix,
                endpoint_url=endpoint_url,
                region=region,
                create_bucket=create_bucket,
            )  # replace() runs __post_init__: the arguments are validated too
        except ValueError as exc:
            raise ConfigError(f"archive.s3: {exc}") from None
        self.bucket = bucket
        self.prefix = base.check_prefix(prefix)
        self.settings = settings
        self.client: S3Client = client if client is not None else self._make_client(settings, region)
        if create_bucket:
            self.ensure_bucket()

    @classmethod
    def from_config(cls, config: S3Config, *, client: S3Client | None = None) -> S3ObjectStore:
        return cls(
            config.bucket,
            config.prefix,
            endpoint_url=config.endpoint_url,
            region=config.region,
            create_bucket=config.create_bucket,
            client=client,
            config=config,
        )

    @staticmethod
    def _make_client(settings: S3Config, region: str | None) -> S3Client:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise MissingDependencyError("boto3", "s3") from exc
        botocore_config = Config(
            connect_timeout=settings.connect_timeout.seconds,
            read_timeout=settings.read_timeout.seconds,
            retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
            s3={"addressing_style": settings.addressing_style},
            request_checksum_calculation="when_required",  # put sends its own SHA-256
            response_checksum_validation="when_supported",  # get verifies full-object checksums
        )
        session = boto3.session.Session()  # own session: the default one is not thread-safe
        return session.client(
            "s3", endpoint_url=settings.endpoint_url, region_name=region, config=botocore_config
        )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + base.check_key(key)

    def _what(self, op: str, key: str = "") -> str:
        return f"s3 {op} s3://{self.bucket}/{self.prefix}{key}"

    @contextlib.contextmanager
    def _errors(self, op: str, key: str = "", *, ignore: frozenset[str] = frozenset()) -> Iterator[None]:
        """Translate boto3/botocore errors; those with a code in ``ignore`` are swallowed."""
        try:
            yield
        except ArchiveError:
            raise
        except Exception as exc:
            if _describe_client_error(exc)[0] not in ignore:
                raise translate_error(exc, self._what(op, key)) from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (LocationConstraint unless us-east-1)."""
        with self._errors("head-bucket", ignore=_NOT_FOUND):
            self.client.head_bucket(Bucket=self.bucket)
            return
        region = self.client.meta.region_name
        where: CreateBucketConfigurationTypeDef = {"LocationConstraint": cast("LocationType", region)}
        with self._errors("create-bucket", ignore=frozenset({"BucketAlreadyOwnedByYou"})):  # concurrent
            if region in (None, "", "us-east-1"):  # us-east-1 refuses its own name as a constraint
                self.client.create_bucket(Bucket=self.bucket)
            else:
                self.client.create_bucket(Bucket=self.bucket, CreateBucketConfiguration=where)

    # -- the ObjectStore contract -------------------------------------------------------

    def put(self, key: str, data: bytes, sha256_hex: str) -> None:
        full = self._key(key)
        base.check_sha256(data, sha256_hex, key)
        limit = self.settings.max_single_put
        if len(data) > limit:
            raise ArchiveError(f"{self._what('put', key)}: {len(data)} bytes > max_single_put ({limit})")
        sent = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
        with self._errors("put", key):
            response = self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=sent
            )
        if (echoed := response.get("ChecksumSHA256")) != sent:  # None: no SHA-256 support at all
            raise ArchiveError(
                f"{self._what('put', key)}: the store answered checksum {echoed!r}, not {sent!r}"
            )

    def head(self, key: str) -> ObjectInfo | None:
        full = self._key(key)
        response: HeadObjectOutputTypeDef | None = None
        with self._errors("head", key, ignore=_NOT_FOUND):
            response = self.client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
        if response is None:
            return None
        size = int(response["ContentLength"])
        checksum = response.get("ChecksumSHA256", "")
        if checksum and "-" not in checksum:  # "<b64>-<parts>" is a multipart composite
            with contextlib.suppress(ValueError):
                return ObjectInfo(key, size, base64.b64decode(checksum, validate=True).hex())
        digest = hashlib.sha256()  # stored without a usable checksum: hash the bytes
        with self._errors("get", key):
            for chunk in self.client.get_object(Bucket=self.bucket, Key=full)["Body"].iter_chunks(_CHUNK):
                digest.update(chunk)
        return ObjectInfo(key, size, digest.hexdigest())

    def get(self, key: str) -> bytes:
        """The object; botocore checks the bytes against a stored full-object checksum."""
        with self._errors("get", key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
            return response["Body"].read()

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` via an HTTP Range; ``end`` past the object is clamped,
        a ``start`` at or past its end raises ``ArchiveError`` (HTTP 416)."""
        if not 0 <= start <= end:
            raise ArchiveError(f"get_range {key!r}: expected 0 <= start <= end, got [{start}, {end})")
        full = self._key(key)
        if start == end:  # an empty range cannot be expressed in HTTP
            return b""
        with self._errors("get_range", key):
            response = self.client.get_object(Bucket=self.bucket, Key=full, Range=f"bytes={start}-{end - 1}")
            data = response["Body"].read()
        if response["ResponseMetadata"]["HTTPStatusCode"] != 206:  # Range ignored: whole object
            data = data[start:end]
        return data

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order. S3 listings carry no checksums, so each
        object is HEADed as it is yielded (consume lazily)."""
        base.check_list_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    if base.is_safe_key(key):  # others were written by another tool
                        info = self.head(key)
                        if info is not None:
                            yield info

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
