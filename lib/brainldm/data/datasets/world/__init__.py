"""The embedded procedural world: scenes and simulated subjects on pycortex's S1."""

from brainldm.data.datasets.world.design import WorldDesign, is_leaked, zoo_pool_ids
from brainldm.data.datasets.world.scenes import CATEGORIES, COLOR_NAMES, COLORS, PLACES, SIZES, Scenes, render_scenes

__all__ = ["WorldDataset", "WorldDesign", "render_scenes", "Scenes", "zoo_pool_ids", "is_leaked",
           "PLACES", "CATEGORIES", "COLORS", "COLOR_NAMES", "SIZES"]


def __getattr__(name):
    if name == "WorldDataset":  # imported lazily: it pulls in pycortex
        from brainldm.data.datasets.world.dataset import WorldDataset

        return WorldDataset
    raise AttributeError(name)
