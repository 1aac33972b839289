"""gitignore-style globs over the POSIX paths of a folder, for a source's include and exclude."""

from __future__ import annotations

import re


def compile_globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for gitignore-style globs over POSIX relative paths (`**/` spans folders)."""
    parts: list[str] = []
    for pattern in patterns:
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        parts.append(regex)
    return re.compile("(?:" + "|".join(parts) + r")\Z" if parts else r"(?!)")
