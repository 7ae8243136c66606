"""Pixel boost: inswapper_128 on a 256 or 512 aligned crop, as sub-pixel tiles. Pure functions.

A crop of size 128*k is split into k*k tiles of 128: tile (i, j) is `crop[i::k, j::k]`, every k-th
pixel from offset (i, j). Each tile is the whole face at 128 px, slightly shifted, which is what the
swapper was trained on; swapped and put back in place, the tiles give a 128*k face with k times the
detail (FaceFusion's "pixel boost" does the same). Tile order is row-major in (i, j): tile index
i*k + j.
"""

from __future__ import annotations

import numpy as np

TILE = 128


def tiles_per_side(size: int) -> int:
    if size % TILE or size < TILE:
        raise ValueError(f"the crop size must be a multiple of {TILE}, got {size}")
    return size // TILE


def split_tiles(crop: np.ndarray, k: int) -> np.ndarray:
    """(k*s, k*s, ...) -> (k*k, s, s, ...): tile i*k + j is crop[i::k, j::k]."""
    height, width = crop.shape[:2]
    if height != width or height % k:
        raise ValueError(f"the crop must be square with a side divisible by {k}, got {crop.shape[:2]}")
    side = height // k
    # (k*s, k*s, C) viewed as (s, k, s, k, C): axis 1 is i, axis 3 is j.
    grid = crop.reshape(side, k, side, k, *crop.shape[2:])
    tiles = np.moveaxis(grid, (1, 3), (0, 1)).reshape(k * k, side, side, *crop.shape[2:])
    return np.ascontiguousarray(tiles)


def merge_tiles(tiles: np.ndarray, k: int) -> np.ndarray:
    """The inverse of split_tiles: (k*k, s, s, ...) -> (k*s, k*s, ...)."""
    if len(tiles) != k * k:
        raise ValueError(f"{k}x{k} tiles expected, got {len(tiles)}")
    side = tiles.shape[1]
    grid = tiles.reshape(k, k, side, side, *tiles.shape[3:])
    crop = np.moveaxis(grid, (0, 1), (1, 3)).reshape(k * side, k * side, *tiles.shape[3:])
    return np.ascontiguousarray(crop)
