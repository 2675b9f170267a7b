"""Frozen, slotted dataclasses built without their ``__init__``, for the per-callback path.

Users: the v1 decoder (:mod:`callgate.protocols.v1.decode`, the neutral calls and their values) and
:mod:`callgate.results` (``Outcome``, ``Decision``), both through :func:`positional_builder`.  Measured
with callgrind: ``Incoming`` 40k instructions through its keyword ``__init__``, 6.7k through its builder;
``Outcome`` 11.3k vs 4.5k; ``Decision`` 19.7k vs 4.3k.

A frozen dataclass's ``__init__`` matches keyword arguments and sets every field through
``object.__setattr__``; events, ``Outcome`` and ``Decision`` are built on every callback.  A
*draft* is a mutable class with the same memory layout: fields are plain slot stores (which the
interpreter specialises), then assigning ``__class__`` turns the draft into an ordinary frozen
instance, equal to ``cls(**fields)``.  The classes themselves are unchanged: objects built by
hand still go through their keyword ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar, cast

T = TypeVar("T")

#: ``object.__new__``: an instance without running ``__init__`` (typed ``Any``: drafts are filled field by field).
new: Callable[[type], Any] = object.__new__


def draft_class(cls: type) -> type:
    """A mutable class with the memory layout of the frozen, slotted dataclass ``cls``.

    Use: ``d = new(draft); d.field = ...`` for every field; ``d.__class__ = cls`` (Python allows it
    between classes with the same base and the same slots).  An Ice's frozen ``__init__`` costs about
    37,000 instructions, its 18 slot stores and the ``__class__`` assignment about 5,000.  Every field
    must be set: a slot never set would be missing on the object.
    """
    base: type = cls.__base__ or object
    namespace: dict[str, Any] = {"__slots__": cast(Any, cls).__slots__}
    if base is not object:
        # A subclass of a frozen base (BaseEvent) would inherit its frozen __setattr__/__delattr__; with
        # object's own, attribute stores on a draft are plain slot stores again.
        namespace["__setattr__"] = object.__setattr__
        namespace["__delattr__"] = object.__delattr__
    draft = type(f"_{cls.__name__}Draft", (base,), namespace)
    new(draft).__class__ = cls  # raises TypeError here, at import, if the layouts ever differ
    return draft


def positional_builder(cls: type[T]) -> Callable[..., T]:
    """A constructor of ``cls`` taking every field positionally, in order, built through its draft class.

    Only for classes without ``__post_init__``: nothing is checked.  ``Outcome``: ~1.0 -> ~0.5 us.
    """
    if not hasattr(cls, "__slots__") or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: positional_builder needs a slotted dataclass without __post_init__")
    names = [f.name for f in fields(cast(Any, cls))]
    stores = "".join(f"    o.{n} = {n}\n" for n in names)
    scope: dict[str, Any] = {"new": new, "draft": draft_class(cls), "cls": cls}
    exec(f"def build({', '.join(names)}):\n    o = new(draft)\n{stores}    o.__class__ = cls\n    return o\n", scope)
    build = scope["build"]
    build.__doc__ = f"{cls.__name__}({', '.join(names)}), every field given, nothing checked."
    return build
