"""Category lists: UT1 and hosts-format lists compiled into a memory-mapped index."""

from poortwachter.lists.index import CategoryIndex, IndexFormatError, IndexLoadError
from poortwachter.lists.install import lists_dir

__all__ = ["CategoryIndex", "IndexFormatError", "IndexLoadError", "lists_dir"]
