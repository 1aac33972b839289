"""gitignore-style globs over the POSIX paths of a folder, for a source's include and exclude."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\*\*/|\*\*|\*|\?|[^*?]+")
_TOKEN_REGEX = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}


def compile_globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for gitignore-style globs over POSIX relative paths (`**/` spans folders)."""
    parts = [
        "".join(_TOKEN_REGEX.get(t) or re.escape(t) for t in _TOKEN.findall(p)) for p in patterns
    ]
    return re.compile("(?:" + "|".join(parts) + r")\Z" if parts else r"(?!)")
