"""Name → builder maps used by configs and the CLI; unknown names list the known ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from scorelab._utils import ScorelabError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named family of builders (distributions, samplers, ...)."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._builders: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, doc: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(builder: Callable[..., T]) -> Callable[..., T]:
            if name in self._builders:
                raise ValueError(f"{self.family} '{name}' is registered twice")
            self._builders[name] = builder
            first_line = (builder.__doc__ or "").strip().splitlines()
            self._docs[name] = doc or (first_line[0] if first_line else "")
            return builder

        return deco

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders))
            raise ScorelabError(f"unknown {self.family} '{name}'; known: {known}") from None

    def build(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)

    def describe(self) -> dict[str, str]:
        return dict(sorted(self._docs.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._builders))
