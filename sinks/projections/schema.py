"""The projection tables (one schema; the column types of each dialect are parameters)."""

from __future__ import annotations

TABLES = ("proj_orders", "proj_positions", "proj_fills", "proj_position_snapshots", "proj_checkpoints")


def ddl(num: str, big: str, text: str = "TEXT") -> tuple[str, ...]:
    """The tables; ``text`` is the text type (PostgreSQL must compare text bytewise, like
    SQLite, so orderings and tie-breaks agree: ``TEXT COLLATE "C"``)."""
    return (
        f"""CREATE TABLE IF NOT EXISTS proj_orders (
            order_id {text} PRIMARY KEY, account {text} NOT NULL, symbol {text} NOT NULL, venue {text} NOT NULL,
            side {text} NOT NULL, order_type {text} NOT NULL, status {text} NOT NULL, quantity {num}, price {num},
            filled {num}, avg_price {num}, fees {num}, created_ts {big} NOT NULL, updated_ts {big} NOT NULL,
            seq {big} NOT NULL, doc {text} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS proj_orders_open ON proj_orders(symbol, status)",
        "CREATE INDEX IF NOT EXISTS proj_orders_account ON proj_orders(account, created_ts)",
        f"""CREATE TABLE IF NOT EXISTS proj_positions (
            account {text} NOT NULL, symbol {text} NOT NULL, venue {text} NOT NULL, quantity {num}, avg_cost {num},
            realized_pnl {num}, fees {num}, fills {big} NOT NULL, last_ts {big} NOT NULL, last_event {text} NOT NULL,
            doc {text} NOT NULL, PRIMARY KEY (account, symbol))""",
        f"""CREATE TABLE IF NOT EXISTS proj_fills (
            account {text} NOT NULL, symbol {text} NOT NULL, ts {big} NOT NULL, fill_key {text} NOT NULL,
            doc {text} NOT NULL, PRIMARY KEY (account, symbol, ts, fill_key))""",
        f"""CREATE TABLE IF NOT EXISTS proj_position_snapshots (
            account {text} NOT NULL, symbol {text} NOT NULL, ts {big} NOT NULL, fill_key {text} NOT NULL,
            doc {text} NOT NULL, PRIMARY KEY (account, symbol, ts, fill_key))""",
        f"CREATE TABLE IF NOT EXISTS proj_checkpoints (log {text} PRIMARY KEY, batch_id {big} NOT NULL)",
    )
