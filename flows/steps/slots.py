"""Compact, fast pickling for the per-symbol state classes of the keyed step."""

from __future__ import annotations

import operator
from typing import Any, ClassVar


class SlotState:
    """Pickles an instance as the tuple of its ``__slots__`` (in declaration order).

    Snapshots pickle every symbol's state at each epoch; one C-level ``attrgetter`` call
    per object is several times cheaper than a generator over ``getattr``. Subclasses
    declare at least two slots, as a tuple."""

    __slots__ = ()
    _names: ClassVar[tuple[str, ...]]
    _state: ClassVar[operator.attrgetter[tuple[object, ...]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._names = tuple(cls.__slots__)
        cls._state = operator.attrgetter(*cls._names)

    def __getstate__(self) -> tuple[object, ...]:
        return type(self)._state(self)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self._names, state, strict=True):
            setattr(self, name, value)
