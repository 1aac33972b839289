from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from feedsvc.config import load_config, parse_config
from feedsvc.errors import ConfigError
from feedsvc.settings import SECTIONS, Config, SourceConfig

MINIMAL = """
site:
  base_url: http://127.0.0.1:8080
sources:
  - name: articles
    path: articles
"""


def problems_of(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "config.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_minimal_config_gets_every_default(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path / "config.yaml")
    assert config.site.title == "feedsvc"
    assert config.site.home == "http://127.0.0.1:8080"
    assert config.site.permalink == ":year/:month/:day/:slug/"
    assert config.feeds.limit == 50
    assert config.feeds.formats == ("rss", "atom", "json")
    assert config.feeds.content == "full"
    assert config.feeds.websub_hub is None
    assert config.feeds.category_hierarchy is True
    assert config.reload.interval_seconds == 60
    assert config.server.port == 8080
    assert config.server.cache_max_age == 300
    assert config.sources[0].include == ("**/*.md", "**/*.markdown", "**/*.txt")
    assert config.sources[0].byte_limit == 5_000_000


def test_source_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path / "conf" / "config.yaml")
    assert config.sources[0].path == str(tmp_path / "conf" / "articles")


def test_config_is_frozen(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path / "config.yaml")
    with pytest.raises(FrozenInstanceError):
        config.feeds.limit = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.feeds.category_map["a"] = "b"  # type: ignore[index]


def test_unknown_key_is_named_with_its_path_and_line(tmp_path: Path) -> None:
    problems = problems_of(MINIMAL + "feeds:\n  limt: 10\n", tmp_path)
    assert problems == [f"{tmp_path / 'config.yaml'}:8: feeds.limt: unknown key"]


def test_unknown_section_and_source_key_are_errors(tmp_path: Path) -> None:
    text = MINIMAL.replace("    path: articles", "    path: articles\n    pth: x") + "extra: 1\n"
    problems = problems_of(text, tmp_path)
    assert any(p.endswith("sources[0].pth: unknown key") for p in problems)
    assert any(p.endswith("extra: unknown key") for p in problems)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("feeds:\n  limit: ten\n", "feeds.limit: expected an integer, got 'ten'"),
        ("feeds:\n  limit: true\n", "feeds.limit: expected an integer, got True"),
        ("feeds:\n  limit: 0\n", "feeds.limit: must be greater than 0"),
        ("feeds:\n  formats: [rss, xml]\n", "feeds.formats: unknown format 'xml'"),
        ("feeds:\n  category_map: {a: [1]}\n", "feeds.category_map: expected a mapping"),
        ("feeds:\n  tag_map: {a: b/c}\n", "feeds.tag_map: 'a' maps to 'b/c', which is not one"),
        ("feeds:\n  formats: []\n", "feeds.formats: must name at least one format"),
        ("feeds:\n  content: excerpt\n", "feeds.content: must be one of full, summary"),
        ("feeds:\n  websub_hub: hub.local\n", "feeds.websub_hub: must be an absolute"),
        ("server:\n  port: 70000\n", "server.port: must be a TCP port"),
        ("reload:\n  interval_seconds: -5\n", "reload.interval_seconds: must be greater than 0"),
        ("feeds: 3\n", "feeds: must be a mapping"),
    ],
)
def test_mistyped_values_are_errors_naming_the_key(
    tmp_path: Path, snippet: str, message: str
) -> None:
    problems = problems_of(MINIMAL + snippet, tmp_path)
    assert len(problems) == 1
    assert message in problems[0]


def test_site_timezone_must_exist(tmp_path: Path) -> None:
    text = MINIMAL.replace("site:\n", "site:\n  timezone: Mars/Olympus\n")
    assert "site.timezone: unknown time zone 'Mars/Olympus'" in problems_of(text, tmp_path)[0]


def test_base_url_and_sources_are_required(tmp_path: Path) -> None:
    problems = problems_of("site:\n  title: x\n", tmp_path)
    assert any("site.base_url: is required" in p for p in problems)
    assert any("sources: must be a non-empty list" in p for p in problems)


def test_base_url_must_be_http(tmp_path: Path) -> None:
    problems = problems_of(MINIMAL.replace("http://127.0.0.1:8080", "/relative"), tmp_path)
    assert "site.base_url: must be an absolute http(s) URL" in problems[0]


def test_duplicate_source_names_are_rejected(tmp_path: Path) -> None:
    text = MINIMAL + "  - name: articles\n    path: other\n"
    assert "sources[1].name: duplicate source name 'articles'" in problems_of(text, tmp_path)[0]


def test_invalid_yaml_reports_its_line(tmp_path: Path) -> None:
    problems = problems_of("site:\n  base_url: [unclosed\n", tmp_path)
    assert problems[0].startswith(f"{tmp_path / 'config.yaml'}:")
    assert "invalid YAML" in problems[0]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_repository_config_is_valid() -> None:
    config = load_config(Path(__file__).parent.parent / "config.yaml")
    assert isinstance(config, Config)
    assert Path(config.sources[0].path).is_dir()


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for section, cls in [*SECTIONS.items(), ("sources[]", SourceConfig)]:
        for spec in fields(cls):
            assert f"`{section}.{spec.name}`" in readme, f"{section}.{spec.name} undocumented"
