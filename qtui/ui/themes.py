"""Theme files: TOML in the shipped themes folder and the user's themes folder -> Textual Themes.

Loading never raises. Each problem becomes one message naming the file ("qtui-x.toml:
primary 'blu' is not a colour"); the app shows them as notifications and keeps its current
(or the default) theme, as posting does. A bad key in an otherwise good file is dropped and
reported; a file without a usable name/primary, or whose colours Textual cannot build a
colour system from, is skipped entirely.

The shipped themes live in the package (qtui/data/themes) so that an installed qtui finds
them; the repository's top-level themes/ is a link to that folder for people browsing it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from qtui.core import paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

SHIPPED_THEMES_DIR = Path(__file__).resolve().parent.parent / "data" / "themes"

REQUIRED = ("name", "primary")
COLOUR_KEYS = (
    "primary", "secondary", "accent", "background", "surface", "panel", "boost",
    "foreground", "warning", "error", "success",
)
FLOAT_KEYS = ("luminosity_spread", "text_alpha")
KNOWN_KEYS = frozenset((*COLOUR_KEYS, *FLOAT_KEYS, "name", "dark", "variables"))


class _Skip(Exception):
    """The whole file is unusable; the message says why."""


def theme_dirs() -> list[Path]:
    """Where themes come from, in load order: later folders override earlier names."""
    return [SHIPPED_THEMES_DIR, paths.user_themes_dir()]


def load_themes(dirs: list[Path]) -> tuple[list[Theme], list[str]]:
    """Every *.toml in `dirs` (missing folders are fine: the user's usually is).

    Returns the themes (one per name; a later folder's theme replaces an earlier one of the
    same name, so a user can restyle a shipped theme) and the problems found.
    """
    by_name: dict[str, Theme] = {}
    problems: list[str] = []
    for folder in dirs:
        try:
            files = sorted(Path(folder).glob("*.toml"))
        except OSError as exc:
            problems.append(f"{folder}: cannot list themes ({exc.strerror or exc})")
            continue
        seen_here: dict[str, Path] = {}
        for file in files:
            theme, file_problems = load_theme_file(file)
            problems.extend(file_problems)
            if theme is None:
                continue
            if theme.name in seen_here:
                problems.append(
                    f"{file}: theme name {theme.name!r} is also used by {seen_here[theme.name].name}; "
                    f"using {file.name}"
                )
            seen_here[theme.name] = file
            by_name[theme.name] = theme
    return list(by_name.values()), problems


def load_theme_file(file: Path) -> tuple[Theme | None, list[str]]:
    """One theme file -> (Theme or None, problems), never an exception."""
    problems: list[str] = []
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, [f"{file}: unreadable ({exc.strerror or exc})"]
    except UnicodeDecodeError:
        return None, [f"{file}: not UTF-8 text"]
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{file}: not valid TOML ({exc})"]
    try:
        kwargs = _theme_kwargs(data, problems)
        theme = Theme(**kwargs)
        # Textual derives dozens of shades lazily; building them now turns a failure at
        # theme-switch time (inside the app) into a message here.
        theme.to_color_system().generate()
    except _Skip as exc:
        return None, [*problems, f"{file}: {exc}; theme skipped"]
    except Exception as exc:  # noqa: BLE001 - anything Textual rejects must not crash startup
        return None, [*problems, f"{file}: Textual cannot use these colours ({exc}); theme skipped"]
    return theme, [f"{file}: {p}" for p in problems]


def _theme_kwargs(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise _Skip("missing required key" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise _Skip("name must be a non-empty string")
    kwargs: dict[str, Any] = {"name": name.strip()}
    for key, value in data.items():
        if key == "name":
            continue
        if key not in KNOWN_KEYS:
            problems.append(f"unknown key {key!r} ignored (known: {', '.join(sorted(KNOWN_KEYS))})")
        elif key in COLOUR_KEYS:
            colour = _colour(key, value)
            if colour is None:
                if key == "primary":
                    raise _Skip(f"primary {value!r} is not a colour")
                problems.append(f"{key} {value!r} is not a colour; ignored")
            else:
                kwargs[key] = colour
        elif key == "dark":
            if isinstance(value, bool):
                kwargs["dark"] = value
            else:
                problems.append(f"dark must be true or false, not {value!r}; ignored")
        elif key in FLOAT_KEYS:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
                kwargs[key] = float(value)
            else:
                problems.append(f"{key} must be a number from 0 to 1, not {value!r}; ignored")
        elif key == "variables":
            kwargs["variables"] = _variables(value, problems)
    return kwargs


def _colour(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        Color.parse(value)
    except ColorParseError:
        return None
    return value


_COLOUR_VARIABLE_SUFFIXES = ("-background", "-foreground", "-color")


def _variable_colour_ok(value: str) -> bool:
    """Colour variables may carry an alpha as in Textual CSS ("#81a1c1 35%") or refer to
    another variable ("$primary"); anything else must parse as a colour."""
    text = value.strip()
    if text.startswith("$"):
        return True
    head, _, tail = text.rpartition(" ")
    if head and tail.endswith("%") and tail[:-1].replace(".", "", 1).isdigit():
        text = head
    try:
        Color.parse(text)
    except ColorParseError:
        return False
    return True


def _variables(value: Any, problems: list[str]) -> dict[str, str]:
    # Variables hold colours and also styles ("bold"); colours are checked by name, because a
    # bad colour here would otherwise fail inside the stylesheet when the theme is applied.
    if not isinstance(value, dict):
        problems.append("[variables] must be a table of name = \"value\"; ignored")
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            problems.append(f"variable {k!r} must be a string, not {v!r}; ignored")
        elif str(k).endswith(_COLOUR_VARIABLE_SUFFIXES) and not _variable_colour_ok(v):
            problems.append(f"variable {k!r} = {v!r} is not a colour; ignored")
        else:
            out[str(k)] = v
    return out
