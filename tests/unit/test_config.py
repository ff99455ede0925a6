"""ticktape.flows.config (TOML + environment overrides, frozen typed sections) and
ticktape.schemas.durations (human durations as int nanoseconds)."""

from __future__ import annotations

import pickle
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticktape.flows.config import Config, DedupeConfig, dump_config, from_dict, load_config, merge
from ticktape.schemas.durations import Duration, dec_hook, enc_hook, format_duration
from ticktape.schemas.errors import ConfigError, TicktapeError

S = 1_000_000_000


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ticktape.toml"
    path.write_text(text)
    return path


# -- durations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("250ms", 250_000_000),
        ("5s", 5 * S),
        ("1m", 60 * S),
        ("1h", 3600 * S),
        ("1d", 86_400 * S),
        ("1h30m", 5400 * S),
        ("1m30s500ms", 90_500_000_000),
        ("1.5s", 1_500_000_000),
        ("10us", 10_000),
        ("7ns", 7),
        (" 2S ", 2 * S),  # trimmed, any case
        ("0s", 0),
    ],
)
def test_parse_text(text: str, ns: int) -> None:
    d = Duration.parse(text)
    assert d == ns
    assert isinstance(d, Duration)
    assert isinstance(d, int)


@pytest.mark.parametrize(("value", "ns"), [(5, 5 * S), (0, 0), (0.25, 250_000_000), (1.5, 1_500_000_000)])
def test_parse_numbers_are_seconds(value: float, ns: int) -> None:
    assert Duration.parse(value) == ns


@pytest.mark.parametrize("bad", ["", "5", "5x", "s", "1h 30m", "m5", "-1s", "1.s", "5sec", "1e3s"])
def test_parse_bad_text(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        Duration.parse(bad)
    assert "expected a duration like '250ms', '5s', '1m', '1h30m' or '1d'" in str(info.value)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [True, None, [1], {"s": 1}])
def test_parse_bad_types(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"expected a duration like '5s', got "):
        Duration.parse(bad)


def test_parse_negative_number() -> None:
    with pytest.raises(ConfigError, match="expected a non-negative duration, got -1"):
        Duration.parse(-1)


def test_duration_is_an_int_in_arithmetic() -> None:
    d = Duration.parse("2s")
    assert Duration.parse(d) is d
    assert d + 1 == 2 * S + 1
    assert d.seconds == 2.0
    assert Duration.parse("250ms").seconds == 0.25
    assert repr(d) == "Duration('2s')"
    assert pickle.loads(pickle.dumps(d)) == d


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (60 * S, "1m"),
        (5400 * S, "90m"),
        (86_400 * S, "1d"),
        (1_500_000_000, "1500ms"),
        (7, "7ns"),
        (10_000, "10us"),
    ],
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration(ns) == text
    assert Duration.parse(text) == ns


@given(st.integers(0, 10**15))
def test_property_format_parse_round_trip(ns: int) -> None:
    assert Duration.parse(format_duration(ns)) == ns


def test_hooks() -> None:
    assert dec_hook(Duration, "1m") == 60 * S
    with pytest.raises(NotImplementedError):
        dec_hook(complex, 1)
    assert enc_hook(Duration(90 * S)) == "90s"
    with pytest.raises(NotImplementedError):
        enc_hook(object())


# -- defaults --------------------------------------------------------------------------


def test_defaults_load_with_no_file_and_no_environment() -> None:
    cfg = load_config(env={})
    assert cfg == Config()
    assert cfg.run.mode == "live"
    assert cfg.run.shards == 32
    assert cfg.run.epoch_interval == 2 * S
    assert cfg.source.kind == "synthetic"
    assert cfg.dedupe.window == 4096
    assert cfg.dedupe.reorder == 256
    assert cfg.dedupe.reorder_time == 300 * S  # = candles.revision_horizon
    assert cfg.dedupe.stale_after == 60 * S
    assert (cfg.cache.price_ttl, cfg.cache.metadata_ttl, cfg.cache.history_ttl) == (S, 3600 * S, 86_400 * S)
    assert cfg.validation.max_future == 5 * S
    assert cfg.data_path == Path("ticktape-data")


def test_config_is_frozen() -> None:
    cfg = load_config(env={})
    with pytest.raises(AttributeError):
        cfg.run.shards = 4  # type: ignore[misc]


def test_dump_config_round_trips() -> None:
    cfg = load_config(env={})
    data = dump_config(cfg)
    assert data["run"]["epoch_interval"] == "2s"
    assert data["cache"]["history_ttl"] == "1d"
    assert from_dict(data) == cfg


# -- file ------------------------------------------------------------------------------


def test_file_values_and_durations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [run]
        mode = "replay"
        shards = 8
        epoch_interval = "250ms"

        [dedupe]
        stale_after = "1h30m"
        stale_overrides = { "BTC-USD" = 5, "ETH-USD" = "1m" }
        contiguous_venues = ["binance"]

        [validation]
        max_future = 2.5
        allow_list = ["BTC-USD"]
        """,
    )
    cfg = load_config(path, env={})
    assert (cfg.run.mode, cfg.run.shards, cfg.run.epoch_interval) == ("replay", 8, 250_000_000)
    assert cfg.dedupe.stale_after == 5400 * S
    assert cfg.dedupe.stale_overrides == {"BTC-USD": 5 * S, "ETH-USD": 60 * S}
    assert all(isinstance(v, Duration) for v in cfg.dedupe.stale_overrides.values())
    assert cfg.dedupe.contiguous_venues == ("binance",)
    assert cfg.validation.max_future == 2_500_000_000
    assert cfg.validation.allow_list == ("BTC-USD",)
    assert cfg.cache == Config().cache  # untouched sections keep their defaults


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.toml"):
        load_config(missing, env={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path, env={})  # a directory is not a file


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[run\nshards = 8\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "is not valid TOML" in str(info.value)
    assert str(path) in str(info.value)
    assert "line 1" in str(info.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("shardz = 3", "unknown field `shardz`"),
        ("[run]\nshardz = 3", "`shardz` - at `$.run`"),
        ("[runn]\nshards = 3", "unknown field `runn`"),
        ("[source.synthetic]\nnope = 1", "`nope` - at `$.source.synthetic`"),
        ("[validation]\nmax_jump = 1", "`max_jump` - at `$.validation`"),
        ("[dedupe]\nstale = '1s'", "`stale` - at `$.dedupe`"),
    ],
)
def test_unknown_key_anywhere_is_named(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert "Object contains unknown field" in str(info.value)
    assert named in str(info.value)
    assert isinstance(info.value, TicktapeError)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("[run]\nshards = 'many'", ("Expected `int`, got `str`", "$.run.shards")),
        ("[run]\nmode = 'turbo'", ("Invalid enum value 'turbo'", "$.run.mode")),
        ("[dedupe]\nstale_after = '5x'", ("'5x'", "$.dedupe.stale_after")),
        ("[dedupe]\nstale_after = -3", ("non-negative", "-3", "$.dedupe.stale_after")),
        ("[dedupe.stale_overrides]\nBTC = 'soon'", ("'soon'", "$.dedupe.stale_overrides")),
        ("[cache]\nprice_ttl = true", ("True", "$.cache.price_ttl")),
    ],
)
def test_bad_values_name_the_key_and_the_value(tmp_path: Path, text: str, parts: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    message = str(info.value)
    assert message.startswith("invalid configuration: ")
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_dedupe_window_must_cover_the_reorder_tolerance(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"window: expected an integer >= reorder \(512\).*got 100 - at `\$.dedupe`"
    ):
        load_config(write(tmp_path, "[dedupe]\nwindow = 100\nreorder = 512"), env={})
    assert load_config(write(tmp_path, "[dedupe]\nwindow = 64\nreorder = 64"), env={}).dedupe.window == 64
    assert DedupeConfig(window=8, reorder=0).window == 8


# -- environment -----------------------------------------------------------------------


def test_env_overrides_a_key() -> None:
    cfg = load_config(env={"TICKTAPE__RUN__SHARDS": "8", "OTHER": "x", "TICKTAPE_RUN__SHARDS": "9"})
    assert cfg.run.shards == 8
    assert cfg.run.batch_size == Config().run.batch_size


def test_env_values_are_toml_when_they_parse_else_strings() -> None:
    cfg = load_config(
        env={
            "TICKTAPE__RUN__DATA_DIR": "/tmp/tt data",  # not TOML: taken as text
            "TICKTAPE__RUN__MODE": '"backfill"',
            "TICKTAPE__DEDUPE__CONTIGUOUS_VENUES": '["kraken", "bybit"]',
            "TICKTAPE__METRICS__ENABLED": "false",
            "TICKTAPE__VALIDATION__MAX_JUMP_PCT": "7.5",
            "TICKTAPE__DEDUPE__STALE_AFTER": "90s",
            "TICKTAPE__CACHE__PRICE_TTL": "2",
        }
    )
    assert cfg.run.data_dir == "/tmp/tt data"
    assert cfg.run.mode == "backfill"
    assert cfg.dedupe.contiguous_venues == ("kraken", "bybit")
    assert cfg.metrics.enabled is False
    assert cfg.validation.max_jump_pct == 7.5
    assert cfg.dedupe.stale_after == 90 * S
    assert cfg.cache.price_ttl == 2 * S


def test_env_nested_keys_and_case() -> None:
    cfg = load_config(
        env={
            "TICKTAPE__SOURCE__SYNTHETIC__SEED": "99",
            "TICKTAPE__dedupe__stale_overrides__BTC-USD": "5s",
            "TICKTAPE__LOG__LEVELS__FLOWS": "DEBUG",
        }
    )
    assert cfg.source.synthetic.seed == 99
    # Keys are lowercased (TOML keys are), so symbol names in paths come out lowercase.
    assert cfg.dedupe.stale_overrides == {"btc-usd": 5 * S}
    assert cfg.log.levels == {"flows": "DEBUG"}


def test_env_overrides_the_file_and_explicit_overrides_win(tmp_path: Path) -> None:
    path = write(tmp_path, "[run]\nshards = 4\nbatch_size = 10\nworkers = 3\n")
    cfg = load_config(
        path,
        env={"TICKTAPE__RUN__SHARDS": "8", "TICKTAPE__RUN__BATCH_SIZE": "20"},
        overrides={"run": {"batch_size": 30}},
    )
    assert (cfg.run.shards, cfg.run.batch_size, cfg.run.workers) == (8, 30, 3)


def test_env_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown field `shardz` - at `\$.run`"):
        load_config(env={"TICKTAPE__RUN__SHARDZ": "8"})
    with pytest.raises(ConfigError, match=r"Expected `int`, got `str` - at `\$.run.shards`"):
        load_config(env={"TICKTAPE__RUN__SHARDS": "eight"})


def test_env_conflicting_overrides() -> None:
    with pytest.raises(ConfigError, match="TICKTAPE__RUN__SHARDS conflicts with another one"):
        load_config(env={"TICKTAPE__RUN": "5", "TICKTAPE__RUN__SHARDS": "8"})


def test_env_empty_path_ignored() -> None:
    assert load_config(env={"TICKTAPE__": "1", "TICKTAPE____": "2"}) == Config()


def test_process_environment_is_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKTAPE__RUN__SHARDS", "6")
    assert load_config().run.shards == 6


def test_merge_is_deep_and_does_not_mutate() -> None:
    base = {"run": {"shards": 1, "mode": "live"}, "log": {"level": "INFO"}}
    over = {"run": {"shards": 2}, "cache": {"max_entries": 5}}
    out = merge(base, over)
    assert out == {
        "run": {"shards": 2, "mode": "live"},
        "log": {"level": "INFO"},
        "cache": {"max_entries": 5},
    }
    assert base == {"run": {"shards": 1, "mode": "live"}, "log": {"level": "INFO"}}
    assert merge(base, {"run": 3}) == {"run": 3, "log": {"level": "INFO"}}


def test_from_dict_rejects_wrong_section_type() -> None:
    with pytest.raises(ConfigError, match=r"Expected `object`, got `int` - at `\$.run`"):
        from_dict({"run": 3})
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"window": 1, "reorder": 2}, DedupeConfig)
