"""The golden post files (data/posts): the config and the file time they are read with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from feedsvc.config import parse_config

POSTS = Path(__file__).parent.parent / "data" / "posts"
CONFIG = parse_config(
    """
site:
  base_url: http://127.0.0.1:8080
  link: https://news.example.cn/
  author: 编辑部
  timezone: Asia/Shanghai
sources: [{name: articles, path: articles}]
""",
    POSTS / "config.yaml",
)
MTIME = datetime(2024, 1, 1, tzinfo=UTC)
