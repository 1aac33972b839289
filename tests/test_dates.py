from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from feedsvc.dates import load_timezone, to_utc

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 24 Oct 2021 11:30:58 GMT", datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)),
        ("Sun, 24 Oct 2021 19:30:58 +0800", datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)),
        ("2022-03-14T09:30:00+08:00", datetime(2022, 3, 14, 1, 30, tzinfo=UTC)),
        ("2022-03-14T09:30:00Z", datetime(2022, 3, 14, 9, 30, tzinfo=UTC)),
        ("2022-03-14 09:30:00", datetime(2022, 3, 14, 1, 30, tzinfo=UTC)),
        ("2022-03-14", datetime(2022, 3, 13, 16, 0, tzinfo=UTC)),
        (date(2022, 3, 14), datetime(2022, 3, 13, 16, 0, tzinfo=UTC)),
        (datetime(2022, 3, 14, 9, 30), datetime(2022, 3, 14, 1, 30, tzinfo=UTC)),
        (
            datetime(2022, 3, 14, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2022, 3, 14, 14, 30, tzinfo=UTC),
        ),
        (1635075058, datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)),
        ("1635075058", datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)),
    ],
)
def test_to_utc_gives_aware_utc_for_every_spelling(value: object, expected: datetime) -> None:
    result = to_utc(value, SHANGHAI)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_rfc2822_without_zone_takes_the_default_zone() -> None:
    assert to_utc("Sun, 24 Oct 2021 19:30:58 -0000", SHANGHAI) == datetime(
        2021, 10, 24, 11, 30, 58, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value", ["2021-13-45", "not a date", "", True, None, [2021], "Sun, 99 Foo"]
)
def test_to_utc_rejects_what_is_not_a_date(value: object) -> None:
    with pytest.raises(ValueError):
        to_utc(value, SHANGHAI)


def test_load_timezone_rejects_unknown_zone() -> None:
    assert load_timezone("Asia/Shanghai").key == "Asia/Shanghai"
    with pytest.raises(ValueError, match="Mars/Olympus"):
        load_timezone("Mars/Olympus")
