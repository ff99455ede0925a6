"""Orders as data: lifecycle event records and their JSON form (``events``), exact
fixed-point arithmetic (``fixed``), the state machine (``machine``) and the order and
position read models as pure folds (``views``). Plain Python: no Bytewax, no I/O."""
