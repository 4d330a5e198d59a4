#!/usr/bin/env python3
"""Cross-check config/calendars/cn-*.toml against the PyPI `chinesecalendar` package.

Test oracle only (never a runtime dependency): `pip install chinesecalendar`, then
`python3 scripts/check_calendar.py [calendar-dir]`. Exits non-zero on any disagreement.

For every day of every year in the data files it checks that
  * working / rest status agrees with `chinese_calendar.is_workday`,
  * `off_days` is exactly the set of days the package attributes to a named holiday block,
  * `adjusted_working_days` is exactly the set of Saturdays/Sundays the package marks as working,
and it recomputes the worked examples of domain-standards §6.2 / domain-fixtures §6.1 from the
files alone, so a typo that happened to match the oracle on status would still be caught there.
"""

import datetime as dt
import pathlib
import sys
import tomllib

try:
    import chinese_calendar as cc
except ImportError:
    sys.exit("chinesecalendar is not installed: pip install chinesecalendar")

DEFAULT_DIR = pathlib.Path(__file__).resolve().parent.parent / "config" / "calendars"


def load(directory):
    years = {}
    for path in sorted(directory.glob("cn-*.toml")):
        with path.open("rb") as f:
            data = tomllib.load(f)
        year = data["year"]
        off = {dt.date.fromisoformat(s) for s in data["off_days"]}
        work = {dt.date.fromisoformat(s) for s in data["adjusted_working_days"]}
        years[year] = (off, work)
    return years


def is_working(years, day):
    off, work = years[day.year]  # KeyError = calendar unavailable, on purpose
    if day in off:
        return False
    if day in work:
        return True
    return day.weekday() < 5


def add_working_days(years, start, n):
    day = start
    while n > 0:
        day += dt.timedelta(days=1)
        if is_working(years, day):
            n -= 1
    return day


def add_calendar_days_roll_over(years, start, n):
    day = start + dt.timedelta(days=n)
    while not is_working(years, day):
        day += dt.timedelta(days=1)
    return day


def main():
    directory = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    years = load(directory)
    if not years:
        sys.exit(f"no cn-*.toml files in {directory}")
    errors = []
    for year, (off, work) in sorted(years.items()):
        named, adjusted = set(), set()
        day = dt.date(year, 1, 1)
        while day.year == year:
            try:
                oracle = cc.is_workday(day)
                on_holiday, name = cc.get_holiday_detail(day)
            except NotImplementedError:
                errors.append(f"{year}: chinesecalendar has no data; cannot verify")
                break
            if on_holiday and name is not None:
                named.add(day)
            if day.weekday() >= 5 and oracle:
                adjusted.add(day)
            if is_working(years, day) != oracle:
                errors.append(f"{day}: file says working={not oracle}, oracle says {oracle}")
            day += dt.timedelta(days=1)
        for label, ours, theirs in (("off_days", off, named), ("adjusted", work, adjusted)):
            for d in sorted(ours - theirs):
                errors.append(f"{year} {label}: {d} listed but not in oracle")
            for d in sorted(theirs - ours):
                errors.append(f"{year} {label}: {d} in oracle but not listed")
        print(f"{year}: checked {len(off)} off days, {len(work)} adjusted working days")

    D = dt.date.fromisoformat
    examples = [
        ("+7wd", "2026-09-28", 7, "2026-10-13"),
        ("+7wd", "2026-02-12", 7, "2026-02-28"),
        ("+7wd", "2026-04-30", 7, "2026-05-13"),
        ("+7wd", "2025-09-26", 7, "2025-10-13"),
        ("+cd/roll", "2026-09-29", 3, "2026-10-08"),
        ("+cd/roll", "2026-09-30", 2, "2026-10-08"),
        ("+cd/roll", "2026-02-12", 3, "2026-02-24"),
    ]
    for kind, start, n, want in examples:
        f = add_working_days if kind == "+7wd" else add_calendar_days_roll_over
        got = f(years, D(start), n)
        if got != D(want):
            errors.append(f"example {start} {kind} {n}: got {got}, want {want}")
    print(f"checked {len(examples)} worked examples")

    for e in errors:
        print("MISMATCH", e, file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
