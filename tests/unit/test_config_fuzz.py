"""Config fuzz (issue 13): every numeric, duration, enum and boolean key of every config
section, at 0, negative, huge, not-a-number and of the wrong type, through the CLI.

The keys come from walking the config structs (``msgspec.inspect``), so a key added to
any section is fuzzed without touching this file. Each value is either accepted (and
then lies inside the bounds the field declares) or refused with exactly one ``error:``
line that names the key, and exit status 2: never a traceback, never silently taken.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import msgspec.inspect as mi
import pytest

from ticktape.flows.cli.main import main
from ticktape.flows.config import Config
from ticktape.schemas.durations import MAX_NS, Duration, PositiveDuration

#: Sections that need other keys set for their fields to be reachable.
CONTEXT = {"archive.s3": '{bucket = "fuzz-bucket"}'}
#: TOML literals tried per kind of key.
INTS = ["0", "-1", "2147483648", "100000000000000000000", "9223372036854775807", '"x"', "true", "1.5"]
FLOATS = ["0", "-1", "0.5", "1e300", "inf", "-inf", "nan", '"x"', "true"]
DURATIONS = ["0", "-1", '"0s"', '"-1s"', '"36501d"', "1e300", '"soon"', "true", '"250ms"']
OTHERS = ['"no-such-choice"', "0", "-1", "[1]"]


def leaves(info: Any = None, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, type info)`` of every scalar key under ``info`` (default: Config)."""
    info = mi.type_info(Config) if info is None else info
    if isinstance(info, mi.StructType):
        for field in info.fields:
            yield from leaves(field.type, f"{path}.{field.name}".lstrip("."))
    elif isinstance(info, mi.UnionType):
        structs = [t for t in info.types if isinstance(t, mi.StructType)]
        for struct in structs:
            yield from leaves(struct, path)
        if not structs:
            yield path, info
    elif isinstance(info, mi.DictType) and isinstance(
        info.value_type, mi.IntType | mi.FloatType | mi.CustomType
    ):
        yield from leaves(info.value_type, f"{path}.0")
    else:
        yield path, info


def literals(info: Any) -> list[str]:
    if isinstance(info, mi.IntType):
        return INTS
    if isinstance(info, mi.FloatType):
        return FLOATS
    if isinstance(info, mi.CustomType):
        return DURATIONS
    if isinstance(info, mi.LiteralType | mi.BoolType):
        return OTHERS
    return []


FUZZED = [(key, info) for key, info in leaves() if literals(info)]


def _within(info: mi.IntType | mi.FloatType, value: float) -> bool:
    return (
        (info.ge is None or value >= info.ge)
        and (info.gt is None or value > info.gt)
        and (info.le is None or value <= info.le)
        and (info.lt is None or value < info.lt)
    )


def acceptable(info: Any, literal: str) -> bool:
    """Whether the field's declared type and bounds admit the value ``literal``."""
    value = eval(literal, {"true": True, "inf": math.inf, "nan": math.nan})
    if isinstance(info, mi.IntType):
        return type(value) is int and _within(info, value)
    if isinstance(info, mi.FloatType):
        return type(value) in (int, float) and _within(info, value)
    if isinstance(info, mi.CustomType):
        assert issubclass(info.cls, Duration)
        try:
            ns = Duration.parse(value)
        except Exception:
            return False
        return ns <= MAX_NS and (ns > 0 or not issubclass(info.cls, PositiveDuration))
    if isinstance(info, mi.LiteralType):
        return value in info.values
    return isinstance(value, bool)


def test_every_numeric_key_declares_both_bounds():
    unbounded = [
        key
        for key, info in leaves()
        if isinstance(info, mi.IntType | mi.FloatType)
        and not key.endswith(".0")  # dict values (offsets per partition): checked by their section
        and ((info.ge is None and info.gt is None) or (info.le is None and info.lt is None))
    ]
    assert unbounded == [], "declare bounds with ticktape.schemas.bounds.between"
    assert len(FUZZED) > 100  # the walk really reaches every section


@pytest.mark.parametrize(("key", "info"), FUZZED, ids=[k for k, _ in FUZZED])
def test_fuzzed_values_are_taken_within_bounds_or_refused_naming_the_key(key, info, capsys):
    context = [f"{k}={v}" for k, v in CONTEXT.items() if key.startswith(k + ".")]
    for literal in literals(info):
        args = ["config", "check", *(a for c in context for a in ("--set", c)), "--set", f"{key}={literal}"]
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        if code == 0:
            assert out.strip() == "ok", (key, literal, out, err)
            assert acceptable(info, literal), (
                f"{key}={literal} was taken but lies outside its declared type/bounds"
            )
            continue
        lines = err.strip().splitlines()
        assert code == 2, (key, literal, err)
        assert len(lines) == 1, (key, literal, err)
        assert lines[0].startswith("error: "), (key, literal, err)
        field = key.removesuffix(".0")  # a dict's value: the dict's key names it
        section, _, name = field.rpartition(".")
        named = field in lines[0] or (name in lines[0] and f"$.{section}" in lines[0])
        assert named, f"{key}={literal}: the error does not name the key: {lines[0]}"
        assert not acceptable(info, literal) or "expected" in lines[0], (key, literal, lines[0])
