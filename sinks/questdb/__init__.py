"""QuestDB outputs: ILP rows with DEDUP UPSERT KEYS, the tables' DDL and ``ticktape questdb init``."""
