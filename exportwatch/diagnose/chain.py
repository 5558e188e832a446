"""The exception chain (``__cause__`` / ``__context__``), as evidence for the rules and frames."""

from __future__ import annotations

from dataclasses import dataclass

from exportwatch.diagnose.fingerprint import strip_ansi
from exportwatch.report import (
    first_line,
)

# ---------------------------------------------------------------------------------------------
# The exception chain, as evidence


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class Link:
    """One exception of the chain, with what the rules read from it."""

    exc: BaseException
    names: frozenset[str]  # qualified names of the class and its bases
    qualname: str
    message: str  # str(exc), ANSI codes removed

    def attr(self, name: str) -> str | None:
        """``str()`` of an attribute, enum members as their name, None when absent."""
        value = getattr(self.exc, name, None)
        if value is None:
            return None
        member = getattr(value, "name", None)
        if isinstance(member, str) and type(value).__module__ != "builtins":
            return member  # an Enum such as UserErrorType.CONSTRAINT_VIOLATION
        try:
            return str(value)
        except Exception:  # a broken __str__ must not break the diagnosis
            return None

    @property
    def first_line(self) -> str:
        return first_line(self.message)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def exception_chain(exc: BaseException) -> list[Link]:
    """Outermost first: follow ``__cause__``, else ``__context__``, guarding against cycles."""
    links: list[Link] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(links) < 32:
        seen.add(id(current))
        cls = type(current)
        names = frozenset(qualified_name(base) for base in cls.__mro__ if base is not object)
        links.append(
            Link(
                exc=current,
                names=names,
                qualname=qualified_name(cls),
                message=strip_ansi(_safe_str(current)),
            )
        )
        current = current.__cause__ if current.__cause__ is not None else current.__context__
    return links
