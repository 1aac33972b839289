"""Deterministic synthetic corpora of Hexo-style posts for `make bench`.

python bench/corpus.py N DIR   # write N posts (3-6 KB, CJK and English, HTML and Markdown)
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

TOP = ["金融", "科技", "宏观", "Engineering", "World", "能源"]
MID = ["财联社", "银行", "半导体", "政策", "Python", "HTTP", "Markets", "电力", "保险", "AI"]
LEAF = ["深度", "快讯", "评论", "数据", "Analysis", "Briefing", "访谈", "专题"]
WORDS_ZH = [
    "市场",
    "资金",
    "政策",
    "央行",
    "利率",
    "企业",
    "投资",
    "增长",
    "数据",
    "指数",
    "银行",
    "科技",
    "产业",
    "消费",
    "出口",
    "改革",
    "监管",
    "风险",
    "流动性",
    "债券",
    "基金",
    "估值",
    "盈利",
    "供应链",
    "产能",
    "需求",
    "通胀",
    "就业",
    "财政",
    "信贷",
]
WORDS_EN = [
    "market",
    "liquidity",
    "policy",
    "central",
    "bank",
    "rate",
    "company",
    "invest",
    "growth",
    "data",
    "index",
    "feed",
    "reader",
    "server",
    "cache",
    "request",
    "latency",
    "release",
    "python",
    "build",
    "deploy",
    "revenue",
    "supply",
    "demand",
    "inflation",
    "credit",
    "bond",
    "fund",
    "valuation",
    "profit",
    "engineering",
]
START = datetime(2015, 1, 1, tzinfo=UTC)
# The corpus sizes `make bench` measures; BENCH_SIZES=1000,10000 for a quicker run.
DEFAULT_SIZES = "1000,10000,50000"


def sentence(rng: random.Random, chinese: bool) -> str:
    words = rng.choices(WORDS_ZH if chinese else WORDS_EN, k=rng.randint(8, 18))
    return ("".join(words) + "。") if chinese else (" ".join(words).capitalize() + ".")


def post(index: int, tags: list[str]) -> tuple[str, str]:
    """(relative path, file text) of post `index`; the same index always gives the same post."""
    rng = random.Random(index)
    chinese = index % 2 == 0
    html = index % 3 == 0
    date = START + timedelta(minutes=37 * index + rng.randint(0, 30))
    categories = [rng.choice(TOP), rng.choice(MID), rng.choice(LEAF)]
    title = sentence(rng, chinese)[:40].rstrip("。.") + f" #{index}"
    paragraphs = []
    while sum(len(p.encode()) for p in paragraphs) < rng.randint(3000, 5500):
        paragraphs.append(" ".join(sentence(rng, chinese) for _ in range(rng.randint(2, 5))))
    if html:
        body = "<div>\n" + "\n".join(f"<p>{p}</p>" for p in paragraphs) + "\n</div>"
    else:
        body = "\n\n".join([*paragraphs[:1], "## " + title, *paragraphs[1:]])
    header = [
        "---",
        f"title: '{title}'",
        "categories:",
        *(f" - {c}" for c in categories),
        "tags: [" + ", ".join(rng.sample(tags, 3)) + "]",
        f"author: {'财联社' if chinese else 'Newsroom Desk'}",
        f"date: {date.strftime('%a, %d %b %Y %H:%M:%S GMT')}",
        f"headimg: 'https://img.example.cn/images/{date:%Y%m%d}/{index}.png'",
        "---",
    ]
    suffix = "txt" if html else "md"
    return f"{date:%Y}/{date:%m}/post-{index:06d}.{suffix}", "\n".join(
        header
    ) + "\n\n" + body + "\n"


def write_corpus(count: int, root: Path, tag_count: int = 200) -> None:
    """Write `count` posts under `root` (which is created)."""
    tags = [f"tag{n:04d}" for n in range(tag_count)]
    for index in range(count):
        relpath, text = post(index, tags)
        target = root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write_corpus(int(sys.argv[1]), Path(sys.argv[2]))
