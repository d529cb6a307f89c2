"""Text preparation: splitting long documents into token windows.

Works on character spans of tokens (from the scorer's tokenizer), so every window is
an exact substring of the document: nothing is rewritten, only cut at token edges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["split_windows", "with_metadata"]


def split_windows(
    text: str,
    offsets: Sequence[tuple[int, int]],
    budget: int,
    overlap: int,
    *,
    truncate: bool = False,
) -> list[tuple[str, int]]:
    """Split ``text`` into windows of at most ``budget`` tokens.

    Args:
        text: The document.
        offsets: The character span of each of its tokens, in order.
        budget: Most tokens per window (at least 1).
        overlap: Tokens shared by consecutive windows; capped at ``budget // 2``.
        truncate: Keep only the first window.

    Returns:
        ``(window_text, n_tokens)`` pairs covering the document in order. A document
        that fits (or has no tokens) is one window: the text itself, unchanged.
    """
    n = len(offsets)
    if n <= budget:
        return [(text, n)]
    if truncate:
        return [(text[offsets[0][0] : offsets[budget - 1][1]], budget)]
    overlap = min(max(overlap, 0), budget // 2)
    # The fewest windows that keep at least `overlap` tokens shared, spread evenly so the
    # first starts at the first token and the last ends at the last one.
    count = math.ceil((n - overlap) / (budget - overlap))
    starts = [round(i * (n - budget) / (count - 1)) for i in range(count)]
    return [(text[offsets[s][0] : offsets[s + budget - 1][1]], budget) for s in starts]


def with_metadata(text: str, metadata: Mapping[str, object], keys: Sequence[str]) -> str:
    """Write the chosen metadata fields, one ``key: value`` line each, before ``text``.

    Missing keys are skipped; with no key present the text is returned unchanged.
    """
    lines = [f"{k}: {metadata[k]}" for k in keys if k in metadata and metadata[k] is not None]
    return "\n".join([*lines, text]) if lines else text
