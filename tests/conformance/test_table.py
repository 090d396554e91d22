"""docs/conformance.md stays true: its summary is recomputed from the rows, every test a row
names exists, and every test named after a test case id has its row.

``python -m tests.conformance.test_table`` prints the summary table recomputed from the rows (paste
it into the document after changing rows)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "conformance.md"
STATES = ("covered", "partial", "not covered")
_SECTION = re.compile(r"^## ([A-Z]) - (.+)$")
_ROW = re.compile(
    r"^\| (TC_([A-Z])_[0-9_]+_CSMS) \| (.+?) \| (.+?) \| (covered|partial|not covered|[^|]*?) \| (.*) \|$"
)
_SUMMARY = re.compile(r"^\| ([A-Z]) - (.+?) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$")
_TOTAL = re.compile(r"^\| \*\*Total\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \|$")
_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def rows(text: str) -> list[tuple[str, str, str, str, str]]:
    """(test case id, block, section name, state, covering cell) of every row, in order."""
    out = []
    section = name = None
    for line in text.splitlines():
        if m := _SECTION.match(line):
            section, name = m.group(1), m.group(2)
            continue
        if m := _ROW.match(line):
            assert section == m.group(2), f"{m.group(1)} is listed under block {section}"
            out.append((m.group(1), m.group(2), name or "", m.group(5), m.group(6)))
    return out


def recomputed(text: str) -> dict[str, tuple[str, Counter[str]]]:
    blocks: dict[str, tuple[str, Counter[str]]] = {}
    for _tc, block, name, state, _cell in rows(text):
        blocks.setdefault(block, (name, Counter()))[1][state] += 1
    return blocks


def summary_table(text: str) -> str:
    lines = ["| Block | Test cases | covered | partial | not covered |", "|---|---|---|---|---|"]
    total: Counter[str] = Counter()
    for block, (name, counts) in sorted(recomputed(text).items()):
        n = sum(counts.values())
        lines.append(
            f"| {block} - {name} | {n} | {counts['covered']} | {counts['partial']} | {counts['not covered']} |"
        )
        total.update(counts)
        total["all"] += n
    lines.append(
        f"| **Total** | **{total['all']}** | **{total['covered']}** | **{total['partial']}** "
        f"| **{total['not covered']}** |"
    )
    return "\n".join(lines)


def test_every_row_has_a_known_state_and_a_unique_id() -> None:
    found = rows(DOC.read_text())
    assert len(found) > 300
    assert [r[3] for r in found if r[3] not in STATES] == []
    ids = Counter(r[0] for r in found)
    assert [tc for tc, n in ids.items() if n > 1] == []


def test_summary_equals_the_rows() -> None:
    text = DOC.read_text()
    stated = {
        m.group(1): tuple(int(m.group(i)) for i in (3, 4, 5, 6)) for m in map(_SUMMARY.match, text.splitlines()) if m
    }
    counted = {
        block: (sum(c.values()), c["covered"], c["partial"], c["not covered"])
        for block, (_name, c) in recomputed(text).items()
    }
    assert stated == counted, "summary out of date; `python -m tests.conformance.test_table` prints the right one"
    (total,) = [tuple(int(x) for x in m.groups()) for m in map(_TOTAL.match, text.splitlines()) if m]
    assert total == tuple(sum(v[i] for v in counted.values()) for i in range(4))


def test_covering_tests_exist() -> None:
    missing = []
    for tc, _block, _name, state, cell in rows(DOC.read_text()):
        refs = _REF.findall(cell)
        if state in ("covered", "partial") and not refs:
            missing.append(f"{tc}: {state} without a test")
        for path, func in refs:
            source = ROOT / path
            if not source.exists() or not re.search(rf"^(async )?def {func}\(", source.read_text(), re.M):
                missing.append(f"{tc}: {path}::{func} not found")
    assert missing == []


def test_conformance_tests_named_after_an_id_have_their_row() -> None:
    text = DOC.read_text()
    listed = {r[0] for r in rows(text)}
    referenced = set(_REF.findall(text))
    problems = []
    for source in sorted(Path(__file__).parent.glob("test_*.py")):
        for func, block, number in re.findall(r"^async def (test_TC_([A-Z])_(\d+)_\w*)\(", source.read_text(), re.M):
            tc = f"TC_{block}_{number}_CSMS"
            if tc not in listed:
                problems.append(f"{func}: no row for {tc}")
            elif (f"tests/conformance/{source.name}", func) not in referenced:
                problems.append(f"{func}: not named in the table")
    assert problems == []


if __name__ == "__main__":
    print(summary_table(DOC.read_text()))
