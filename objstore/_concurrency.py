"""Range coalescing for ``get_ranges``."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["coalesce_ranges"]


def coalesce_ranges(
    ranges: Sequence[tuple[int, int]], gap: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """Merge ranges whose gap is at most ``gap`` bytes.

    Returns:
        The merged ``[start, end)`` fetches in ascending order, and for each input range
        ``(fetch_index, offset_in_fetch, length)`` to slice its bytes out of a fetch.
    """
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    fetches: list[tuple[int, int]] = []
    slices: list[tuple[int, int, int]] = [(0, 0, 0)] * len(ranges)
    for i in order:
        start, end = ranges[i]
        if fetches and start <= fetches[-1][1] + gap:
            f_start, f_end = fetches[-1]
            fetches[-1] = (f_start, max(f_end, end))
        else:
            fetches.append((start, end))
        slices[i] = (len(fetches) - 1, start - fetches[-1][0], end - start)
    return fetches, slices
