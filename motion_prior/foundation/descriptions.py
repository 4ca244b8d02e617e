"""The words of the clips' text descriptions that code also reads: image directions and the push
sentence. The clip generator writes descriptions with these and `eval flow` reads them back, so
the rule that names a direction and the sentence's form live here, once.
"""

from __future__ import annotations

DIRECTIONS = ("to the right", "to the left", "down", "up")
_PUSHES = " pushes the "


def image_direction(dx: float, dy: float) -> str:
    """The image direction of a displacement (x right, y down) along its dominant axis."""
    if abs(dx) >= abs(dy):
        return "to the right" if dx > 0 else "to the left"
    return "down" if dy > 0 else "up"


def push_sentence(name: str, direction: str) -> str:
    """"the pusher pushes the <name> <direction>", the sentence :func:`pushed_object` reads."""
    return f"the pusher{_PUSHES}{name} {direction}"


def pushed_object(text: str) -> tuple[str, str] | None:
    """(object name, direction) of a description whose first clause is a push sentence, else None."""
    clause = text.split(",")[0]
    if _PUSHES not in clause:
        return None
    for direction in DIRECTIONS:
        if clause.endswith(" " + direction):
            return clause.split(_PUSHES, 1)[1][: -len(direction)].strip(), direction
    return None
