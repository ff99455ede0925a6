"""CQRS read models of orders built only from the orders event log: the SQL store
(SQLite by default, PostgreSQL in production), the projector that folds the log into it,
and the event-log maintainer that keeps it current while the orders flow runs."""
