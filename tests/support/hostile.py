"""Hostile and broken post files, each with the line and reason of the problem it must
give (read by the parser's tests and by the every-core reading tests)."""

from __future__ import annotations

LAUGHS = (
    "---\n"
    + "\n".join(
        [
            'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
            *(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]"
                for i in range(8)
            ),
            "title: *i",
        ]
    )
    + "\n---\nbody\n"
)

# name -> (file bytes, expected line, expected reason fragment)
HOSTILE: dict[str, tuple[bytes, int, str]] = {
    "malformed.md": (b"---\ntitle: ok\ntags: [a, b\n---\nx\n", 4, "invalid YAML front matter"),
    "list-header.md": (b"---\n- a\n- b\n---\nx\n", 1, "not a mapping"),
    "scalar-header.md": (b"---\njust text\n---\nx\n", 1, "not a mapping"),
    "empty.md": (b"", 1, "empty file"),
    "blank.md": (b"\n\n  \n", 1, "empty file"),
    "no-header.md": (b"# Only a heading\n\nNo front matter.\n", 1, "no YAML front matter"),
    "unclosed.md": (b"---\ntitle: never closed\n", 1, "not closed"),
    "binary.md": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1, "binary file"),
    "latin1.md": (b"---\ntitle: ok\n---\nna\xefve caf\xe9\n", 4, "neither UTF-8 nor GB18030"),
    "python-tag.md": (
        b'---\ntitle: !!python/object/apply:os.system ["touch /tmp/feedsvc-pwned"]\n---\nx\n',
        2,
        "invalid YAML front matter",
    ),
    "custom-tag.md": (b"---\ntitle: !vault secret\n---\nx\n", 2, "invalid YAML front matter"),
    "laughs.md": (LAUGHS.encode(), 1, "expands (YAML aliases) beyond the limit"),
    "wide.md": (b"---\ntags: [" + b"t," * 110_000 + b"t]\n---\nx\n", 1, "beyond the limit"),
    "deep.md": (b"---\ntitle: " + b"[" * 5000 + b"]" * 5000 + b"\n---\nx\n", 2, "nesting depth"),
    "title-list.md": (b"---\ntitle: [a, b]\ndate: 2022-01-01\n---\nx\n", 2, "title: expected text"),
    "bad-date.md": (b"---\ntitle: t\ndate: 2021-13-45\n---\nx\n", 3, "month must be in 1..12"),
    "bad-date-text.md": (b"---\ntitle: t\ndate: yesterday\n---\nx\n", 3, "date: not a date"),
    "categories-number.md": (b"---\ntitle: t\ncategories: 42\n---\nx\n", 3, "categories:"),
    "draft-not-bool.md": (b"---\ntitle: t\ndraft: maybe\n---\nx\n", 3, "draft: expected true"),
    "relative-link.md": (b"---\ntitle: t\nlink: /local\n---\nx\n", 3, "expected an absolute URL"),
}
