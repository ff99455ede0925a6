"""The ``ticktape`` command line: one module per command group, named after it.

User mistakes print one ``error:`` line and exit 2 (``main``).
"""
