"""Building blocks shared by the sinks: the partitioned sink base class, the background
writer thread and SQLite connections configured one way.
"""
