from feedsvc.sources.globs import compile_globs


def test_compile_globs_matches_like_gitignore() -> None:
    pattern = compile_globs(("**/*.md", "top/*.txt"))
    assert pattern.match("a.md") and pattern.match("x/y/a.md")
    assert pattern.match("top/a.txt") and not pattern.match("top/sub/a.txt")
    assert not compile_globs(()).match("a.md")
