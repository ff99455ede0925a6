"""ticktape.sinks.objectstore.s3 on a real moto server, directly and through the fault proxy;
error mapping and checksum checks on stubbed responses (botocore's Stubber)."""

from __future__ import annotations

import base64
import http.client
import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import msgspec
import pytest
from botocore.stub import Stubber

from tests.support.faultproxy import FaultProxy
from ticktape.infra.devstack.services import MotoS3
from ticktape.schemas.durations import Duration, dec_hook
from ticktape.schemas.errors import ArchiveError, ConfigError
from ticktape.sinks.objectstore.base import ObjectInfo, TransientStoreError, sha256_of
from ticktape.sinks.objectstore.retry import RetriesExhaustedError, RetryPolicy, call_with_retry
from ticktape.sinks.objectstore.s3 import S3Config, S3ObjectStore
from ticktape.sinks.objectstore.stores import open_store

KEY = "stream=trades/date=2024-01-02/hour=03/part=0/1-100.parquet"
DATA = os.urandom(200_000)
SHA = sha256_of(DATA)


def no_wait(_seconds: float) -> None:
    """``sleep`` for ``call_with_retry``: the tests do not wait out the backoff."""


def b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


@pytest.fixture
def store(s3_server: MotoS3, s3_client: Any, s3_bucket: str) -> S3ObjectStore:
    return S3ObjectStore(s3_bucket, "archive", endpoint_url=s3_server.endpoint_url)


@pytest.fixture
def proxied(fault_proxy: FaultProxy, s3_client: Any, s3_bucket: str) -> S3ObjectStore:
    """A store behind the fault proxy; no botocore retries, short read timeout."""
    config = S3Config(
        bucket=s3_bucket,
        endpoint_url=fault_proxy.endpoint_url,
        max_attempts=1,
        read_timeout=Duration.parse("1500ms"),
    )
    return S3ObjectStore.from_config(config)


def only_object(store: S3ObjectStore, data: bytes = DATA) -> None:
    assert list(store.list()) == [ObjectInfo(KEY, len(data), sha256_of(data))]
    assert store.get(KEY) == data


# -- on moto ------------------------------------------------------------------------------


@pytest.mark.integration
def test_round_trip(store: S3ObjectStore, s3_client: Any, s3_bucket: str) -> None:
    assert store.url == f"s3://{s3_bucket}/archive"
    assert store.head(KEY) is None
    store.put(KEY, DATA, SHA)
    assert store.head(KEY) == ObjectInfo(KEY, len(DATA), SHA)
    raw = s3_client.head_object(Bucket=s3_bucket, Key=f"archive/{KEY}", ChecksumMode="ENABLED")
    assert raw["ChecksumSHA256"] == b64(SHA)  # stored with the object, not computed on HEAD
    assert store.get(KEY) == DATA
    assert store.get_range(KEY, 4, 4096) == DATA[4:4096]
    assert store.get_range(KEY, len(DATA) - 10, len(DATA) + 100) == DATA[-10:]
    assert store.get_range(KEY, 7, 7) == b""
    with pytest.raises(ArchiveError, match="InvalidRange"):
        store.get_range(KEY, len(DATA), len(DATA) + 1)
    for key in ("a-c", "a/b", "a.d", "a/a"):
        store.put(key, key.encode(), sha256_of(key.encode()))
    s3_client.put_object(Bucket=s3_bucket, Key="outside-the-prefix", Body=b"x")
    assert [i.key for i in store.list()] == ["a-c", "a.d", "a/a", "a/b", KEY]
    assert [i.key for i in store.list("a/")] == ["a/a", "a/b"]
    store.delete(KEY)
    store.delete(KEY)
    assert store.head(KEY) is None
    with pytest.raises(ArchiveError, match=rf"s3 get s3://{s3_bucket}/archive/{KEY}: NoSuchKey \(HTTP 404\)"):
        store.get(KEY)


@pytest.mark.integration
def test_put_refuses_data_that_does_not_match_its_checksum(store: S3ObjectStore) -> None:
    with pytest.raises(ArchiveError, match="the caller said"):
        store.put(KEY, DATA, sha256_of(b"other"))
    with pytest.raises(ArchiveError, match="lowercase hex"):
        store.put(KEY, DATA, SHA.upper())
    assert store.head(KEY) is None


@pytest.mark.integration
def test_stored_checksum_is_verified_on_get(store: S3ObjectStore, s3_client: Any, s3_bucket: str) -> None:
    # moto stores whatever x-amz-checksum-sha256 says (AWS and MinIO would answer BadDigest)
    s3_client.put_object(
        Bucket=s3_bucket,
        Key=f"archive/{KEY}",
        Body=DATA,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=b64("00" * 32),
    )
    assert store.head(KEY) == ObjectInfo(KEY, len(DATA), "00" * 32)  # the archiver's compare fails
    with pytest.raises(ArchiveError, match="FlexibleChecksumError"):
        store.get(KEY)


@pytest.mark.integration
def test_head_hashes_objects_stored_without_checksum(
    store: S3ObjectStore, s3_client: Any, s3_bucket: str
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key=f"archive/{KEY}", Body=DATA)
    assert store.head(KEY) == ObjectInfo(KEY, len(DATA), SHA)


@pytest.mark.integration
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_bucket_creation(s3_server: MotoS3, s3_client: Any, region: str) -> None:
    bucket = f"ticktape-create-{uuid.uuid4().hex[:12]}"
    for _ in range(2):  # the second time the bucket exists already
        store = S3ObjectStore(bucket, endpoint_url=s3_server.endpoint_url, region=region, create_bucket=True)
        store.put("k", b"v", sha256_of(b"v"))
    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name=region)
    location = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    assert location == (None if region == "us-east-1" else region)
    client.delete_object(Bucket=bucket, Key="k")
    client.delete_bucket(Bucket=bucket)


@pytest.mark.integration
def test_open_store_s3(s3_server: MotoS3, s3_client: Any, s3_bucket: str) -> None:
    settings = S3Config(bucket="ignored", endpoint_url=s3_server.endpoint_url)
    store = open_store(f"s3://{s3_bucket}/a/b", s3=settings)
    assert store.url == f"s3://{s3_bucket}/a/b"
    store.put("k", b"v", sha256_of(b"v"))
    assert s3_client.get_object(Bucket=s3_bucket, Key="a/b/k")["Body"].read() == b"v"
    assert open_store(msgspec.structs.replace(settings, bucket=s3_bucket, prefix="a")).get("b/k") == b"v"


# -- through the fault proxy ----------------------------------------------------------------


def plan_reset(p: FaultProxy) -> None:
    p.reset(2, method="PUT")


def plan_500(p: FaultProxy) -> None:
    p.error(500, 2, method="PUT")


def plan_503(p: FaultProxy) -> None:
    p.error(503, 2, method="PUT")


def plan_slow(p: FaultProxy) -> None:
    p.delay(4.0, 2, method="PUT")  # the upstream applies each PUT; the client times out


@pytest.mark.integration
@pytest.mark.parametrize("plan", [plan_reset, plan_500, plan_503, plan_slow], ids=lambda f: f.__name__[5:])
def test_transient_put_failures_are_retried_without_duplicates(
    proxied: S3ObjectStore, fault_proxy: FaultProxy, plan: Any
) -> None:
    plan(fault_proxy)
    with pytest.raises(TransientStoreError):
        proxied.put(KEY, DATA, SHA)
    retries: list[int] = []
    call_with_retry(
        lambda: proxied.put(KEY, DATA, SHA),
        RetryPolicy(),
        what="put",
        on_retry=lambda n, _d, _e: retries.append(n),
        sleep=no_wait,
    )
    assert retries == [1]
    assert fault_proxy.received["PUT"] == 3
    fault_proxy.pass_through()
    assert proxied.head(KEY) == ObjectInfo(KEY, len(DATA), SHA)
    only_object(proxied)


@pytest.mark.integration
def test_lost_put_response_is_retried_with_the_same_bytes(
    proxied: S3ObjectStore, fault_proxy: FaultProxy
) -> None:
    fault_proxy.lose_response(1)
    call_with_retry(lambda: proxied.put(KEY, DATA, SHA), RetryPolicy(), what="put", sleep=no_wait)
    assert fault_proxy.forwarded["PUT"] == 2  # the first PUT did succeed upstream
    puts = [e for e in fault_proxy.events if e[0] == "PUT"]
    assert [action for _m, _t, action in puts] == ["lose", "pass"]
    assert puts[0][1] == puts[1][1]  # same key
    assert proxied.head(KEY) == ObjectInfo(KEY, len(DATA), SHA)
    only_object(proxied)


@pytest.mark.integration
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_transient_read_failures_are_retried(
    proxied: S3ObjectStore, fault_proxy: FaultProxy, method: str
) -> None:
    proxied.put(KEY, DATA, SHA)
    fault_proxy.reset(1, method=method).error(503, 1, method=method)
    read = proxied.get if method == "GET" else proxied.head
    result = call_with_retry(lambda: read(KEY), RetryPolicy(), what=method, sleep=no_wait)
    assert result == (DATA if method == "GET" else ObjectInfo(KEY, len(DATA), SHA))
    assert fault_proxy.received[method] == 3


@pytest.mark.integration
def test_persistent_outage_exhausts_the_retries(proxied: S3ObjectStore, fault_proxy: FaultProxy) -> None:
    fault_proxy.error(503, None)
    slept: list[float] = []
    with pytest.raises(RetriesExhaustedError, match=r"gave up after 4 attempts: .*SlowDown \(HTTP 503\)"):
        call_with_retry(
            lambda: proxied.put(KEY, DATA, SHA), RetryPolicy(attempts=4), what="put", sleep=slept.append
        )
    assert fault_proxy.received["PUT"] == 4
    assert fault_proxy.forwarded["PUT"] == 0
    assert len(slept) == 3
    fault_proxy.pass_through()
    assert list(proxied.list()) == []


@pytest.mark.integration
def test_botocore_max_attempts_counts_every_attempt(
    fault_proxy: FaultProxy, s3_client: Any, s3_bucket: str
) -> None:
    store = S3ObjectStore(s3_bucket, endpoint_url=fault_proxy.endpoint_url)  # max_attempts=2 by default
    fault_proxy.reset(None, method="PUT")
    with pytest.raises(TransientStoreError, match="ConnectionClosedError"):
        store.put(KEY, DATA, SHA)
    assert fault_proxy.received["PUT"] == 2


@pytest.mark.integration
def test_proxy_relays_chunked_bodies(fault_proxy: FaultProxy, s3_client: Any, s3_bucket: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fault_proxy.port, timeout=10)
    chunks = [DATA[:1000], DATA[1000:50_000], DATA[50_000:]]
    conn.request("PUT", f"/{s3_bucket}/chunked", body=iter(chunks), encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 200, response.read()
    conn.close()
    assert s3_client.get_object(Bucket=s3_bucket, Key="chunked")["Body"].read() == DATA


# -- stubbed responses (no server) ----------------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[S3ObjectStore, Stubber]]:
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="stub", aws_secret_access_key="stub"
    )
    with Stubber(client) as stubber:
        yield S3ObjectStore("bucket", "pre", client=client), stubber


def test_put_requires_the_store_to_echo_the_checksum(stubbed: tuple[S3ObjectStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_response("put_object", {"ChecksumSHA256": b64(SHA)})
    store.put(KEY, DATA, SHA)
    stubber.add_response("put_object", {})  # a store without checksum support
    with pytest.raises(ArchiveError, match="answered checksum None"):
        store.put(KEY, DATA, SHA)
    stubber.add_response("put_object", {"ChecksumSHA256": b64("11" * 32)})
    with pytest.raises(ArchiveError, match="answered checksum"):
        store.put(KEY, DATA, SHA)


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (503, "SlowDown", True),
        (500, "InternalError", True),
        (502, "BadGateway", True),
        (429, "TooManyRequests", True),
        (400, "RequestTimeout", True),
        (400, "Throttling", True),
        (403, "AccessDenied", False),
        (404, "NoSuchBucket", False),
        (400, "InvalidRequest", False),
    ],
)
def test_error_mapping(
    stubbed: tuple[S3ObjectStore, Stubber], status: int, code: str, transient: bool
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_object", service_error_code=code, http_status_code=status)
    with pytest.raises(ArchiveError) as info:
        store.put(KEY, DATA, SHA)
    assert isinstance(info.value, TransientStoreError) is transient
    assert f"s3 put s3://bucket/pre/{KEY}: {code} (HTTP {status})" in str(info.value)
    assert "stub" not in str(info.value).replace("stubbed", "")  # no credentials


def test_head_404_is_none_but_403_is_an_error(stubbed: tuple[S3ObjectStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    assert store.head(KEY) is None
    stubber.add_client_error("head_object", service_error_code="403", http_status_code=403)
    with pytest.raises(ArchiveError, match="403") as info:
        store.head(KEY)
    assert not isinstance(info.value, TransientStoreError)


def test_config() -> None:
    raw = {"bucket": "my-bucket", "prefix": "ticks/", "connect_timeout": "2s", "read_timeout": 1.5}
    config = msgspec.convert(raw, S3Config, dec_hook=dec_hook)
    assert (config.connect_timeout, config.read_timeout) == (Duration.parse("2s"), Duration.parse("1500ms"))
    assert (config.max_attempts, config.addressing_style, config.region) == (2, "auto", None)
    bad = [
        {"bucket": "B"},
        {"bucket": "b", "extra": 1},
        {"bucket": "my-bucket", "prefix": "../x"},
        {"bucket": "my-bucket", "endpoint_url": "http://key:secret@127.0.0.1:9000"},
        {"bucket": "my-bucket", "endpoint_url": "127.0.0.1:9000"},
        {"bucket": "my-bucket", "read_timeout": "0s"},
        {"bucket": "my-bucket", "addressing_style": "dns"},
        {"bucket": "my-bucket", "max_single_put": 6 * 1024**3},
    ]
    for fields in bad:
        with pytest.raises(msgspec.ValidationError) as info:
            msgspec.convert(fields, S3Config, dec_hook=dec_hook)
        assert "secret" not in str(info.value)
    with pytest.raises(ConfigError):
        S3ObjectStore("Not_A_Bucket", client=boto3.client("s3", region_name="us-east-1"))


def test_put_refuses_objects_over_max_single_put() -> None:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    store = S3ObjectStore("bucket", client=client, config=S3Config(bucket="bucket", max_single_put=1000))
    # no response queued: any request would fail the test
    with Stubber(client), pytest.raises(ArchiveError, match="max_single_put"):
        store.put("k", DATA, SHA)
