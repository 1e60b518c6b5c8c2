"""One module class per spatial rank from a base whose `rank` class attribute decides it:
fct.nn's LocallyConnected1d/2d/3d, BlurPool1d/2d/3d and StochasticPool1d/2d/3d."""

from __future__ import annotations

INPUT_SHAPES = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def rank_classes(base: type, name: str, doc: str) -> tuple[type, type, type]:
    """Subclasses {name}1d, {name}2d and {name}3d of base with rank 1, 2, 3, documented by doc
    with {rank} and {shape} (the input's) filled in. They live in base's module (assign them
    there under these names: pickling finds a class by module and name)."""
    made = []
    for rank in (1, 2, 3):
        cls_name = f"{name}{rank}d"
        namespace = {
            "rank": rank,
            "__doc__": doc.format(rank=rank, shape=INPUT_SHAPES[rank]),
            "__module__": base.__module__,
            "__qualname__": cls_name,
        }
        made.append(type(cls_name, (base,), namespace))
    return made[0], made[1], made[2]
