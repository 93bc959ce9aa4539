"""Face search over a collection: a backend interface (``base.SearchBackend``) and the in-memory
exact backend (``memory.InMemoryExactSearch``). The store stays the source of truth; a backend is
a (re)buildable view of it."""

from rekface.search.base import CosineMatch, SearchBackend
from rekface.search.memory import InMemoryExactSearch

__all__ = ["CosineMatch", "InMemoryExactSearch", "SearchBackend"]
