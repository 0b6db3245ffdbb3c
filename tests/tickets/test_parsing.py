import json
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.tickets.expected import as_data
from tickets.parsing import ParsedTicket, ParseError, parse_ticket

pytestmark = pytest.mark.smoke

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(path.stem for path in FIXTURES.glob("*.txt"))


@pytest.mark.parametrize("name", CASES)
def test_fixture_parses_to_its_expected_result(name):
    raw = (FIXTURES / f"{name}.txt").read_bytes()
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert as_data(parse_ticket(raw)) == expected


def test_every_fixture_has_its_expected_result():
    assert CASES
    assert sorted(path.stem for path in FIXTURES.glob("*.json")) == CASES


def fingerprint(name: str) -> str:
    result = parse_ticket((FIXTURES / f"{name}.txt").read_bytes())
    assert isinstance(result, ParsedTicket)
    return result.fingerprint()


def test_layout_does_not_change_the_fingerprint():
    layouts = ["sample", "crlf", "bom", "several_blank_lines", "reordered_columns"]
    assert len({fingerprint(name) for name in [*layouts, "trailing_spaces_and_lines"]}) == 1


def test_content_changes_the_fingerprint():
    assert fingerprint("sample") != fingerprint("total_not_sum")
    assert fingerprint("sample") != fingerprint("extra_headers")


tickets_like = st.builds(
    lambda headers, rows, sep: sep.join(
        [*(f"{k}: {v}" for k, v in headers), "", "product,product_id,price", *rows]
    ).encode(),
    st.lists(st.tuples(st.sampled_from(["Order", "VAT", "Total", "x"]), st.text(max_size=8))),
    st.lists(st.text(alphabet=st.sampled_from(list('ab,"0123.- \r\n\x00é')), max_size=20)),
    st.sampled_from(["\n", "\r\n"]),
)


@example(b"\x01:")  # headers to the end of the ticket, none of them required
@given(st.one_of(st.binary(max_size=2000), tickets_like))
def test_any_bytes_give_a_result_or_a_located_parse_error(raw):
    result = parse_ticket(raw)
    assert isinstance(result, ParsedTicket | ParseError)
    if isinstance(result, ParseError):
        assert 1 <= result.line <= raw.count(b"\n") + 1
        assert result.reason
    else:
        assert result.lines
        assert all(line.price >= 0 and line.product_id for line in result.lines)


@pytest.mark.smoke
def test_money_is_written_in_ascii_digits():
    ticket = "Order: 1\nVAT: 1.00\nTotal: 14.90\n\nproduct,product_id,price\nTea,T1,١٤.٩٠\n"
    result = parse_ticket(ticket.encode())
    assert isinstance(result, ParseError)
    assert result.line == 6
