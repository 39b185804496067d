"""MemoryConfig: Ascend-style memory options, validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class MemoryConfig:
    """Ascend-style memory options.

    - ``atomic_clean_policy``: 0 zeroes every memset output together at the start of each
      inference (one fill, those buffers live all inference); 1 zeroes each just before its
      kernel (lower peak, more fills).
    - ``static_memory_policy``: 0 each compiled model sizes its own memory; 1/2 all compiled
      models of a Core share one arena sized to the largest graph; 3 arenas grow in size
      classes for changing input shapes; 4 both.
    """

    atomic_clean_policy: int = 0
    static_memory_policy: int = 0

    def __post_init__(self) -> None:
        if self.atomic_clean_policy not in (0, 1):
            raise ConfigError(f"atomic_clean_policy must be 0 or 1, got {self.atomic_clean_policy!r}")
        if self.static_memory_policy not in (0, 1, 2, 3, 4):
            raise ConfigError(f"static_memory_policy must be 0..4, got {self.static_memory_policy!r}")

    @property
    def shared_arena(self) -> bool:
        return self.static_memory_policy in (1, 2, 4)

    @property
    def size_classes(self) -> bool:
        return self.static_memory_policy in (3, 4)
