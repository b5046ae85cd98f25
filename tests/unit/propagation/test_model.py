"""The values of the propagation check: the round's table (rendered beside its value now)."""

from __future__ import annotations

from cname_flow.propagation.model import (
    MAX_VALUES_CHARS,
    AddressAnswer,
    AnswerState,
    NameserverAddress,
    Round,
    render_table,
)


def answer(host: str, address: str, state: AnswerState, **kw: object) -> AddressAnswer:
    fields: dict[str, object] = {"values": frozenset(), "ttl": None, "serial": None,
                                 "rtt_s": None, "detail": "", **kw}
    return AddressAnswer(NameserverAddress(host, address, 53), state, **fields)  # type: ignore[arg-type]


def test_table_should_align_columns_and_compare_serials_with_the_newest() -> None:
    round_ = Round.judge([
        answer("ns1.example.net", "127.0.0.11", AnswerState.OK, values=frozenset({"tok"}),
               serial=7, rtt_s=0.0012, nsid="a1"),
        answer("ns2.example.net", "::1", AnswerState.PENDING, serial=5, rtt_s=0.0009,
               detail="NXDOMAIN"),
        answer("ns3.example.net", "127.0.0.13", AnswerState.UNREACHABLE, detail="timeout"),
    ], strict=False)
    lines = round_.table().splitlines()
    assert lines[0].split() == ["HOST", "ADDRESS", "STATE", "SERIAL", "RTT", "VALUES", "DETAIL"]
    assert lines[1].split() == ["ns1.example.net", "127.0.0.11:53", "OK", "7", "(max)", "1.2ms",
                                "tok", "nsid=a1"]
    assert lines[2].split() == ["ns2.example.net", "[::1]:53", "PENDING", "5", "(-2)", "0.9ms",
                                "-", "NXDOMAIN"]
    assert lines[3].split() == ["ns3.example.net", "127.0.0.13:53", "UNREACHABLE", "-", "-", "-",
                                "timeout"]
    starts = {line.index(line.split()[2]) for line in lines}
    assert len(starts) == 1  # the STATE column starts at one offset on every line


def test_table_should_shorten_long_value_lists_and_join_detail_with_nsid() -> None:
    values = frozenset(f"token-{i:02d}" for i in range(20))
    line = render_table([answer("ns1.example.net", "127.0.0.11", AnswerState.PENDING,
                                values=values, detail="value absent", nsid="edge")]).splitlines()[1]
    shown = line.split("  ")[-2].strip()
    assert len(shown) == MAX_VALUES_CHARS and shown.endswith("...")
    assert line.endswith("value absent; nsid=edge")
