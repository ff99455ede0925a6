"""Map msgspec decode failures to :class:`ticktape.schemas.errors.DecodeError` (one place for all
venue and history decoders, so dead letters read the same whatever the source).

msgspec messages have a few stable shapes (the path suffix `` - at `$.data[0]` `` is
optional)::

    JSON is malformed: invalid character (byte 4)      -> DECODE_ERROR at $
    Input data was truncated                           -> DECODE_ERROR at $
    Object missing required field `p` - at `$.data[0]` -> MISSING_FIELD at $.data[0].p
    Expected `str`, got `int` - at `$.s`               -> DECODE_ERROR at $.s
    Expected `array` of at least length 7, got 3       -> DECODE_ERROR at $
    Invalid enum value 'foo' - at `$.id_type`          -> DECODE_ERROR at $.id_type

This only runs on the error path, so plain string handling (and a second parse to tell
invalid JSON from a validation error) is fine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ticktape.schemas.errors import DecodeError
from ticktape.schemas.records import DLCode

_AT = " - at `"
_MISSING = "Object missing required field `"
_json_check = msgspec.json.Decoder(msgspec.Raw)


def short_repr(raw: bytes | bytearray | memoryview | str, limit: int = 60) -> str:
    """A short, printable repr of raw input for error messages."""
    data = bytes(raw) if not isinstance(raw, str) else raw.encode()
    if len(data) > limit:
        return f"{data[:limit]!r}... ({len(data)} bytes)"
    return repr(data)


def _split_path(message: str) -> tuple[str, str]:
    """``("Expected ...", "$.x")`` from a msgspec message with or without a path."""
    head, sep, tail = message.partition(_AT)
    if not sep:
        return message, "$"
    return head, tail.rstrip("`")


def _expected_got(head: str) -> tuple[str, str]:
    if head.startswith("Expected "):
        body = head[len("Expected ") :]
        expected, sep, got = body.rpartition(", got ")
        if sep:
            return expected, got
        return body, "a value of another type"
    if head.startswith("Invalid enum value "):
        return "one of the allowed values", head[len("Invalid enum value ") :]
    if head.startswith("Invalid value "):
        return "a supported value", head[len("Invalid value ") :]
    if head.startswith("Object contains unknown field "):
        return "no other fields", head[len("Object contains unknown field ") :]
    return "a valid value", head


def _is_json(raw: bytes | bytearray | memoryview) -> bool:
    """msgspec validates while it parses, so ``{} junk`` fails validation first; a
    message that is not JSON at all must still be reported as such."""
    try:
        _json_check.decode(raw)
    except msgspec.DecodeError:
        return False
    except RecursionError:  # valid so far, nested too deeply to tell
        return True
    return True


def too_deep() -> DecodeError:
    """Nesting deeper than the parser's recursion limit (a hostile message, never a crash)."""
    return DecodeError(
        DLCode.DECODE_ERROR, "$", "JSON nested less deeply", "nesting beyond the parser's limit"
    )


def map_decode_error(
    exc: msgspec.DecodeError | RecursionError, raw: bytes | bytearray | memoryview
) -> DecodeError:
    """The :class:`DecodeError` (with a :class:`DLCode`) describing ``exc`` on ``raw``."""
    if isinstance(exc, RecursionError):
        return too_deep()
    if not isinstance(exc, msgspec.ValidationError) or not _is_json(raw):
        return DecodeError(DLCode.DECODE_ERROR, "$", "a JSON object", short_repr(raw))
    head, path = _split_path(str(exc))
    if head.startswith(_MISSING):
        name = head[len(_MISSING) :].rstrip("`")
        return DecodeError(DLCode.MISSING_FIELD, f"{path}.{name}", "a value", "field absent")
    expected, got = _expected_got(head)
    return DecodeError(DLCode.DECODE_ERROR, path, expected, got)


def unsupported(field: str, expected: str, got: object) -> DecodeError:
    """A well-formed message of a kind this decoder does not handle."""
    return DecodeError(DLCode.UNSUPPORTED, field, expected, got)


def bad_value(field: str, expected: str, got: object) -> DecodeError:
    """A field whose text could not be converted (number, timestamp, ...)."""
    return DecodeError(DLCode.DECODE_ERROR, field, expected, got)


def kind_error(
    exc: msgspec.DecodeError | RecursionError,
    raw: bytes,
    *,
    envelope: msgspec.json.Decoder[Any],
    key: str,
    supported: Callable[[str], bool],
    expected: str,
    missing_ok: bool = False,
) -> DecodeError:
    """The error for a message that failed to decode as a supported kind.

    ``envelope`` decodes only the discriminating ``key`` (``e``, ``channel``, ``topic``;
    ``None`` when absent). If the message is valid JSON of another kind (or has no
    ``key``, unless ``missing_ok``) the answer is UNSUPPORTED_MESSAGE; otherwise it is
    the mapped msgspec error of the full decode.
    """
    if isinstance(exc, msgspec.ValidationError):
        try:
            kind = getattr(envelope.decode(raw), key)
        except (msgspec.DecodeError, RecursionError):
            return map_decode_error(exc, raw)  # not an object, or a non-string key
        if (kind is None and not missing_ok) or (kind is not None and not supported(kind)):
            return unsupported(f"$.{key}", expected, kind if kind is not None else f"no `{key}`")
    return map_decode_error(exc, raw)
