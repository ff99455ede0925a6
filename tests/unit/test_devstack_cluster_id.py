"""The KRaft cluster id of the Apache Kafka dev/test broker."""

from __future__ import annotations

import base64
import uuid

import pytest

from ticktape.infra.devstack import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 as the first byte encodes to "-" first: the format tool took it for an option
    # (`argument --cluster-id/-t: expected one argument`) and the broker did not start.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    ident = kafka.cluster_id()
    assert ident == base64.urlsafe_b64encode(b"\x10" + bytes(15)).decode().rstrip("=")
    assert len(ident) == 22
    assert base64.urlsafe_b64encode(b"\xf8" + bytes(15)).decode().startswith("-")  # the premise
