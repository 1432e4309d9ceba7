"""The `dice` tool: a function the model calls, with typed arguments and settings.

How a tool works, in the order rtd uses it:

1. ``@tool`` reads the function once, when this module is imported: the name (the function's),
   the description the model reads (the docstring's first paragraph), and a JSON schema of the
   arguments built from the type hints and the ``Args:`` section. A mistake here (a missing
   hint, an unsupported type) fails at import, so `rtd plugins` shows it before anyone talks.
2. The ``[tools.dice]`` table of rtd.toml is validated against `DiceSettings`; a bad value
   disables the tool with one log line (and `rtd check` fails) instead of stopping rtd.
3. When the model calls the tool, rtd checks its JSON arguments against the schema, then
   calls ``dice(count=..., sides=..., settings=DiceSettings(...))`` on a worker thread.
   Whatever it returns is sent back to the model: a string as is, anything else as JSON.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rtd import setting, tool

MAX_SIDES = 1000
"""A limit the settings cannot raise: more sides than this is a mistake, not a game."""


# Settings are a *frozen* dataclass whose fields are made with `setting(default, help, ...)`.
# The help text is what `rtd config` prints and what error messages quote; `min`/`max` (and
# `choices`) are checked before the daemon starts, so the function can rely on them.
# Supported field types: str, int, float, bool, and dict[str, str] (a TOML table of strings).
@dataclass(frozen=True)
class DiceSettings:
    """Settings of the dice tool: the ``[tools.dice]`` table."""

    default_sides: int = setting(6, "sides of a die when the model does not say",
                                 min=2, max=MAX_SIDES)
    max_dice: int = setting(10, "most dice one call may roll", min=1, max=100)


# `settings=DiceSettings` tells rtd which dataclass to validate [tools.dice] against, and that
# the function's `settings` parameter receives it. That parameter is not in the schema: the
# model never sees or fills it. Keyword-only (after `*`) so it can follow defaulted arguments.
@tool(settings=DiceSettings)
def dice(count: int = 1, sides: int | None = None, *, settings: DiceSettings) -> dict[str, object]:
    """Roll dice and tell each die's number and the total.
    Use it for board games, for random choices, or whenever the user asks to roll dice.

    Args:
        count: How many dice to roll.
        sides: Sides on each die, e.g. 20 for a d20; leave it out for the usual die.
    """
    # The schema already guarantees the types (an int, or None for `sides`); ranges are ours
    # to check. A problem the *model* caused is returned as {"error": ...}: the model reads it
    # and can fix the call or tell the user. Raising is for bugs: rtd turns an exception into
    # an error output too, but also logs it as a failure of the plugin.
    if count < 1:
        return {"error": f"count must be at least 1, got {count}"}
    if count > settings.max_dice:
        return {"error": f"at most {settings.max_dice} dice per roll (tools.dice.max_dice), "
                         f"got {count}"}
    sides = settings.default_sides if sides is None else sides
    if not 2 <= sides <= MAX_SIDES:
        return {"error": f"sides must be from 2 to {MAX_SIDES}, got {sides}"}
    rolls = [random.randint(1, sides) for _ in range(count)]
    # A JSON object with named fields lets the model (and a scenario's `then` template) pick
    # what to say: "You rolled 3 and 5, 8 in total."
    return {"rolls": rolls, "total": sum(rolls), "sides": sides}


__all__ = ["MAX_SIDES", "DiceSettings", "dice"]
