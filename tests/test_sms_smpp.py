"""SMPP transport: the split, the receipts, and a real bind to an in-process SMSC.

The SMSC (tests/smsc.py) is a separate implementation of SMPP 3.4 written
with struct, not smpp34: what the transport sends is checked on the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smsc import (
    ESME_RINVDSTADR,
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RTHROTTLED,
    HOLD,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    FakeSmsc,
    Submit,
)

from acd.adapters.sms_smpp import SmppConfig, SmppTransport, destination
from acd.protocols.smpp import (
    DC_GSM7,
    DC_UCS2,
    decode_short_message,
    gsm7_decode,
    parse_receipt,
    split_message,
)
from acd.sms.transport import (
    DeliveryReceipt,
    InboundSms,
    OutgoingSms,
    PermanentSmsError,
    TransportError,
)

# ~150 characters of Chinese with full-width punctuation: 3 parts of 67 UCS-2 units at most.
CHINESE = (
    "尊敬的客户您好，感谢您致电本公司客服热线。由于当前咨询人数较多，您的来电未能及时接通，"
    "我们深表歉意。常见问题如账单查询、套餐变更、流量办理等均可在手机营业厅App中自助办理，"
    "无需等待：https://m.example.cn/s/Ab3dE 如需人工服务请在工作日九点至十八点再次来电。回复TD退订"
)


def udh_parts(subs: list[Submit]) -> list[tuple[int, int, int, bytes]]:
    """(ref, total, seq, payload) of each concatenated part, read per 3GPP TS 23.040."""
    out = []
    for s in subs:
        udhl, iei, iel, ref, total, seq = s.short_message[:6]
        assert (udhl, iei, iel) == (5, 0x00, 3)
        out.append((ref, total, seq, s.short_message[6:]))
    return out


# -- split_message, a pure function --------------------------------------------


def test_short_ascii_is_one_gsm7_part_without_udh() -> None:
    assert split_message("Hello, world!") == (DC_GSM7, [b"Hello, world!"])


@pytest.mark.parametrize(("char", "code"), [
    ("@", 0x00), ("£", 0x01), ("$", 0x02), ("è", 0x04), ("\n", 0x0A), ("Δ", 0x10),
    ("_", 0x11), ("ß", 0x1E), ("¤", 0x24), ("¡", 0x40), ("Ä", 0x5B), ("§", 0x5F),
    ("¿", 0x60), ("ü", 0x7E), ("à", 0x7F),
])
def test_gsm7_basic_table(char: str, code: int) -> None:
    assert split_message(char) == (DC_GSM7, [bytes([code])])


@pytest.mark.parametrize(("char", "code"), [
    ("€", 0x65), ("[", 0x3C), ("]", 0x3E), ("{", 0x28), ("}", 0x29), ("\\", 0x2F),
    ("~", 0x3D), ("^", 0x14), ("|", 0x40), ("\f", 0x0A),
])
def test_gsm7_extension_table_is_escape_plus_code(char: str, code: int) -> None:
    assert split_message(char) == (DC_GSM7, [bytes([0x1B, code])])


def test_160_gsm_chars_are_one_part_161_are_two() -> None:
    dc, parts = split_message("a" * 160)
    assert (dc, parts) == (DC_GSM7, [b"a" * 160])
    dc, parts = split_message("a" * 161, ref=42)
    assert dc == DC_GSM7
    assert parts == [bytes([5, 0, 3, 42, 2, 1]) + b"a" * 153,
                     bytes([5, 0, 3, 42, 2, 2]) + b"a" * 8]


def test_extension_characters_count_two_septets() -> None:
    # 80 euro signs are 160 septets: one part; 159 'a' + one euro are 161: two.
    assert split_message("€" * 80) == (DC_GSM7, [b"\x1be" * 80])
    _, parts = split_message("a" * 159 + "€")
    assert len(parts) == 2
    # An escape is never cut from its character: 152 'a' leave one septet, '[' needs two.
    _, parts = split_message("a" * 152 + "[" + "b" * 10)
    assert parts[0][6:] == b"a" * 152
    assert parts[1][6:] == b"\x1b\x3c" + b"b" * 10


def test_70_ucs2_chars_are_one_part_71_are_two() -> None:
    dc, parts = split_message("中" * 70)
    assert (dc, parts) == (DC_UCS2, ["中".encode("utf-16-be") * 70])
    dc, parts = split_message("中" * 71, ref=9)
    assert dc == DC_UCS2
    assert parts == [bytes([5, 0, 3, 9, 2, 1]) + "中".encode("utf-16-be") * 67,
                     bytes([5, 0, 3, 9, 2, 2]) + "中".encode("utf-16-be") * 4]


def test_one_non_gsm_character_makes_the_whole_text_ucs2() -> None:
    dc, parts = split_message("Reply STOP to opt out 退订")
    assert dc == DC_UCS2
    assert parts == ["Reply STOP to opt out 退订".encode("utf-16-be")]


def test_surrogate_pair_is_never_split_between_parts() -> None:
    text = "中" * 66 + "😀" + "中" * 5  # 73 UTF-16 units; the emoji would straddle 67
    dc, parts = split_message(text)
    assert dc == DC_UCS2 and len(parts) == 2
    assert parts[0][6:].decode("utf-16-be", errors="strict") == "中" * 66
    assert parts[1][6:].decode("utf-16-be", errors="strict") == "😀" + "中" * 5
    # in one part, an emoji costs two of the 70 units
    assert len(split_message("中" * 68 + "😀")[1]) == 1
    assert len(split_message("中" * 69 + "😀")[1]) == 2


def test_the_reference_is_one_octet_and_more_than_255_parts_is_refused() -> None:
    _, parts = split_message("x" * 400, ref=0x1FF)
    assert {p[3] for p in parts} == {0xFF}
    assert len(split_message("中" * 67 * 255)[1]) == 255
    with pytest.raises(ValueError, match="256 parts"):
        split_message("中" * (67 * 255 + 1))


def _reassemble(dc: int, parts: list[bytes]) -> str:
    if len(parts) == 1:
        payloads = parts
    else:
        refs = {p[3] for p in parts}
        assert len(refs) == 1
        assert [p[:3] for p in parts] == [b"\x05\x00\x03"] * len(parts)
        assert [(p[4], p[5]) for p in parts] == [(len(parts), i) for i in
                                                 range(1, len(parts) + 1)]
        payloads = [p[6:] for p in parts]
    if dc == DC_UCS2:
        for p in payloads:  # every part decodes on its own: no pair is cut
            p.decode("utf-16-be", errors="strict")
        return b"".join(payloads).decode("utf-16-be")
    for p in payloads:
        assert not p.endswith(b"\x1b")
    return gsm7_decode(b"".join(payloads))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab €[中😀\n"), max_size=500))
def test_any_text_survives_the_split(text: str) -> None:
    dc, parts = split_message(text, ref=200)
    assert _reassemble(dc, parts) == text
    if dc == DC_GSM7:
        limit = 160 if len(parts) == 1 else 6 + 153
    else:
        limit = 140 if len(parts) == 1 else 6 + 134
    assert all(len(p) <= limit for p in parts)


# -- receipts and inbound text, pure ---------------------------------------------


def test_parse_receipt_text_and_tlvs() -> None:
    text = (b"id:0A1B2C sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 "
            b"stat:DELIVRD err:000 text:Hello")
    assert parse_receipt(text, []) == ("0A1B2C", "DELIVRD")
    assert parse_receipt(b"", [(TLV_RECEIPTED_MESSAGE_ID, b"77\0"), (TLV_MESSAGE_STATE, b"\x05")]
                         ) == ("77", "UNDELIV")
    # the TLVs win over the text
    assert parse_receipt(text, [(TLV_RECEIPTED_MESSAGE_ID, b"99\0")]) == ("99", "DELIVRD")


def test_decode_short_message() -> None:
    assert decode_short_message("退订".encode("utf-16-be"), 0x08) == "退订"
    assert decode_short_message(b"STOP", 0x00) == "STOP"
    assert decode_short_message(b"\x00\x1be", 0x00) == "@€"
    assert decode_short_message("Né".encode("latin-1"), 0x03) == "Né"
    assert decode_short_message("Né".encode("latin-1"), 0x00) == "Né"  # Latin-1 under 0
    assert decode_short_message("退订".encode("gbk"), 0x0F) == "退订"


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="bind"):
        SmppConfig("h", bind="receiver")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="submit_timeout_s"):
        SmppConfig("h", submit_timeout_s=0)


# -- against the in-process SMSC ---------------------------------------------------


class Harness:
    def __init__(self, smsc: FakeSmsc, transport: SmppTransport) -> None:
        self.smsc = smsc
        self.transport = transport
        self.receipts: asyncio.Queue[DeliveryReceipt] = asyncio.Queue()
        self.inbound: asyncio.Queue[InboundSms] = asyncio.Queue()

    async def on_receipt(self, r: DeliveryReceipt) -> None:
        await self.receipts.put(r)

    async def on_inbound(self, m: InboundSms) -> None:
        await self.inbound.put(m)


def config(port: int, **kw: object) -> SmppConfig:
    base: dict[str, object] = dict(
        host="127.0.0.1", port=port, system_id="acd", password="secret", system_type="ACD",
        source_addr="10086", submit_timeout_s=0.5, connect_timeout_s=1.0,
        reconnect_min_s=0.05, reconnect_max_s=0.2, liveness_check_s=0.1)
    base.update(kw)
    return SmppConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    smsc = FakeSmsc(password="secret")
    await smsc.start()
    transport = SmppTransport(config(smsc.port))
    harness = Harness(smsc, transport)
    await transport.start(harness.on_receipt, harness.on_inbound)
    assert await transport.wait_bound(5.0)
    yield harness
    await transport.close()
    await smsc.stop()


async def test_bind_is_a_transceiver_bind_with_our_credentials(h: Harness) -> None:
    assert h.smsc.binds == [(0x09, "acd", "secret", "ACD")]


async def test_chinese_text_goes_as_three_concatenated_ucs2_parts(h: Harness) -> None:
    assert 140 <= len(CHINESE) <= 160
    message_id = await h.transport.send(OutgoingSms(1234, "8613800138000", CHINESE))
    subs = await h.smsc.wait_submits(3)
    assert len(h.smsc.submits) == 3
    assert message_id == subs[0].message_id  # the FIRST part's id
    for s in subs:
        assert (s.data_coding, s.esm_class, s.registered_delivery) == (0x08, 0x40, 1)
        # the default TON 0 (as acd.yaml's): the national form, whatever form came in
        assert (s.destination, s.dest_ton, s.dest_npi) == ("13800138000", 0, 1)
        assert (s.source, s.source_ton, s.source_npi) == ("10086", 0, 1)
    parts = udh_parts(subs)
    assert [(ref, total, seq) for ref, total, seq, _ in parts] == [
        (1234 & 0xFF, 3, 1), (1234 & 0xFF, 3, 2), (1234 & 0xFF, 3, 3)]
    assert all(len(p) <= 134 for *_, p in parts)
    assert b"".join(p for *_, p in parts).decode("utf-16-be") == CHINESE
    # the next message gets another reference
    await h.transport.send(OutgoingSms(1235, "8613800138000", CHINESE))
    later = udh_parts(await h.smsc.wait_submits(6))[3:]
    assert {ref for ref, *_ in later} == {1235 & 0xFF}


async def test_short_ascii_text_is_one_gsm7_part(h: Harness) -> None:
    message_id = await h.transport.send(OutgoingSms(1, "13800138000", "Reply STOP to opt out",
                                                    sender="ACME"))
    (s,) = await h.smsc.wait_submits(1)
    assert (s.data_coding, s.esm_class, s.short_message) == (0x00, 0x00, b"Reply STOP to opt out")
    assert (s.source, s.source_ton, s.source_npi) == ("ACME", 5, 0)  # alphanumeric sender
    assert message_id == s.message_id


async def test_receipt_becomes_delivery_receipt_and_is_answered(h: Harness) -> None:
    message_id = await h.transport.send(OutgoingSms(1, "13800138000", "hi"))
    status = await h.smsc.deliver(
        "13800138000", "10086",
        f"id:{message_id} sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 "
        "stat:DELIVRD err:000 text:hi".encode(), esm_class=0x04)
    assert status == ESME_ROK  # deliver_sm_resp
    r = await asyncio.wait_for(h.receipts.get(), 2)
    assert r == DeliveryReceipt(message_id, True, "DELIVRD")
    # TLV-only receipt of a failure
    other = await h.transport.send(OutgoingSms(2, "13800138001", "hi"))
    await h.smsc.deliver("13800138001", "10086", esm_class=0x04, tlvs={
        TLV_RECEIPTED_MESSAGE_ID: other.encode() + b"\0", TLV_MESSAGE_STATE: b"\x05"})
    r = await asyncio.wait_for(h.receipts.get(), 2)
    assert r == DeliveryReceipt(other, False, "UNDELIV")


async def test_multipart_receipts_make_one_receipt_under_the_first_id(h: Harness) -> None:
    first = await h.transport.send(OutgoingSms(7, "13800138000", CHINESE))
    ids = [s.message_id for s in await h.smsc.wait_submits(3)]
    # ENROUTE is not final: dropped; parts 3 and 2 delivered: not yet the whole message
    await h.smsc.deliver("13800138000", "10086", f"id:{ids[0]} stat:ENROUTE".encode(),
                         esm_class=0x04)
    for mid in (ids[2], ids[1]):
        await h.smsc.deliver("13800138000", "10086", f"id:{mid} stat:DELIVRD".encode(),
                             esm_class=0x04)
    await asyncio.sleep(0.05)
    assert h.receipts.empty()
    await h.smsc.deliver("13800138000", "10086", f"id:{ids[0]} stat:DELIVRD".encode(),
                         esm_class=0x04)
    r = await asyncio.wait_for(h.receipts.get(), 2)
    assert r == DeliveryReceipt(first, True, "DELIVRD")
    # a failed part fails the message at once
    first = await h.transport.send(OutgoingSms(8, "13800138000", CHINESE))
    ids = [s.message_id for s in (await h.smsc.wait_submits(6))[3:]]
    await h.smsc.deliver("13800138000", "10086", f"id:{ids[1]} stat:EXPIRED".encode(),
                         esm_class=0x04)
    r = await asyncio.wait_for(h.receipts.get(), 2)
    assert r == DeliveryReceipt(first, False, "EXPIRED")
    assert h.smsc.deliver_resps == [ESME_ROK] * 5


async def test_hex_ids_in_decimal_receipts(h: Harness) -> None:
    transport = SmppTransport(config(h.smsc.port, msg_id_bases=(16, 10)))
    await transport.start(h.on_receipt, h.on_inbound)
    try:
        assert await transport.wait_bound(3.0)
        message_id = await transport.send(OutgoingSms(1, "13800138000", "hi"))
        (s,) = await h.smsc.wait_submits(1)
        assert message_id == str(int(s.message_id, 16))  # the SMSC answered hex "1000"
        # the SMSC delivers to a bound session: leave only the second one bound
        await h.transport.close()
        await h.smsc.deliver("13800138000", "10086",
                             f"id:{int(s.message_id, 16)} stat:DELIVRD".encode(), esm_class=0x04)
        assert await asyncio.wait_for(h.receipts.get(), 2) == DeliveryReceipt(
            message_id, True, "DELIVRD")
    finally:
        await transport.close()


async def test_mo_replies_become_inbound_sms(h: Harness) -> None:
    assert await h.smsc.deliver("13800138000", "10086", b"STOP") == ESME_ROK
    assert await asyncio.wait_for(h.inbound.get(), 2) == InboundSms("13800138000", "STOP")
    await h.smsc.deliver("13900139000", "10086", "退订".encode("utf-16-be"), data_coding=0x08)
    assert await asyncio.wait_for(h.inbound.get(), 2) == InboundSms("13900139000", "退订")
    # a concatenated reply, in two parts, the second first
    body = "我不需要这类短信，请不要再发了".encode("utf-16-be")
    await h.smsc.deliver("13700137000", "10086", b"\x05\x00\x03\x11\x02\x02" + body[20:],
                         esm_class=0x40, data_coding=0x08)
    await h.smsc.deliver("13700137000", "10086", b"\x05\x00\x03\x11\x02\x01" + body[:20],
                         esm_class=0x40, data_coding=0x08)
    assert await asyncio.wait_for(h.inbound.get(), 2) == InboundSms(
        "13700137000", "我不需要这类短信，请不要再发了")
    assert h.receipts.empty()


@pytest.mark.parametrize(("status", "error"), [
    (ESME_RTHROTTLED, TransportError),
    (ESME_RMSGQFUL, TransportError),
    (ESME_RINVDSTADR, PermanentSmsError),
])
async def test_refusals(h: Harness, status: int, error: type[Exception]) -> None:
    h.smsc.policy = lambda s: status
    with pytest.raises(error, match="ESME_R"):
        await h.transport.send(OutgoingSms(1, "13800138000", "hi"))


async def test_refusal_of_a_later_part_fails_the_send(h: Harness) -> None:
    h.smsc.policy = lambda s: ESME_RTHROTTLED if s.short_message[5] == 2 else ESME_ROK
    with pytest.raises(TransportError, match="part 2/3"):
        await h.transport.send(OutgoingSms(1, "13800138000", CHINESE))
    assert len(h.smsc.submits) == 2  # part 3 was not tried


async def test_no_answer_is_a_transport_error_after_the_submit_timeout(h: Harness) -> None:
    h.smsc.policy = lambda s: HOLD
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="submit_sm_resp"):
        await h.transport.send(OutgoingSms(1, "13800138000", "hi"))
    assert 0.45 < time.monotonic() - t0 < 1.5
    h.smsc.policy = lambda s: ESME_ROK  # the session is still good
    assert await h.transport.send(OutgoingSms(2, "13800138000", "hi"))


async def test_smsc_gone_then_back_on_the_same_port(h: Harness) -> None:
    await h.smsc.stop()
    t0 = time.monotonic()
    with pytest.raises(TransportError):
        while True:  # at most until the loss is seen; each send fails or succeeds at once
            await h.transport.send(OutgoingSms(1, "13800138000", "hi"))
            await asyncio.sleep(0.01)
    assert time.monotonic() - t0 < 1.0
    await asyncio.sleep(0.3)  # a few reconnect attempts against a closed port
    assert not h.transport.bound
    with pytest.raises(TransportError, match="not bound"):
        await h.transport.send(OutgoingSms(1, "13800138000", "hi"))
    await h.smsc.start()  # same port
    assert await h.transport.wait_bound(3.0)
    assert h.transport.binds == 2
    message_id = await h.transport.send(OutgoingSms(2, "13800138000", "back"))
    (s,) = await h.smsc.wait_submits(1)
    assert (s.short_message, s.message_id) == (b"back", message_id)


async def test_smsc_unbinding_us_makes_us_bind_again(h: Harness) -> None:
    await h.smsc.unbind_all()
    await asyncio.sleep(0.05)
    assert await h.transport.wait_bound(3.0)
    assert h.transport.binds == 2
    assert await h.transport.send(OutgoingSms(1, "13800138000", "hi"))


async def test_start_with_the_smsc_down_and_a_wrong_password() -> None:
    smsc = FakeSmsc(password="right")
    await smsc.start()
    port = smsc.port
    await smsc.stop()
    # smpp34 1.5.0 does not report a refused bind: connect() waits out its timeout.
    transport = SmppTransport(config(port, password="wrong", connect_timeout_s=0.3))
    h = Harness(smsc, transport)
    await transport.start(h.on_receipt, h.on_inbound)  # does not raise
    try:
        with pytest.raises(TransportError, match="not bound"):
            await transport.send(OutgoingSms(1, "13800138000", "hi"))
        await smsc.start()
        await asyncio.sleep(1.0)
        assert len(smsc.binds) >= 2  # refused, tried again with backoff
        assert not transport.bound and "failed" in transport.last_error
        smsc.password = "wrong"
        assert await transport.wait_bound(3.0)
    finally:
        await transport.close()
        await smsc.stop()


async def test_close_unbinds(h: Harness) -> None:
    await h.transport.close()
    await asyncio.sleep(0.05)
    assert h.smsc.unbinds == 1
    assert not h.transport.bound


async def test_throughput_limit(h: Harness) -> None:
    transport = SmppTransport(config(h.smsc.port, max_submits_per_s=20))
    await transport.start(h.on_receipt, h.on_inbound)
    try:
        assert await transport.wait_bound(3.0)
        t0 = time.monotonic()
        for i in range(5):
            await transport.send(OutgoingSms(i, "13800138000", "hi"))
        assert time.monotonic() - t0 >= 0.19  # 5 submits at 20/s: 4 gaps of 50 ms
    finally:
        await transport.close()



# -- the destination address and its TON ------------------------------------------


@pytest.mark.parametrize(("ton", "to", "address"), [
    # what the outbox gives (the number as dialled in China) under each TON
    (1, "13800138000", "8613800138000"),  # international: E.164 digits, no '+'
    (1, "02012345678", "862012345678"),
    (1, "0016502530000", "16502530000"),
    (0, "13800138000", "13800138000"),  # unknown: as dialled in the country
    (0, "02012345678", "02012345678"),
    (0, "0016502530000", "0016502530000"),  # a foreign number after 00
    (2, "13800138000", "13800138000"),  # national
    (2, "+862012345678", "02012345678"),
    (0, "8613800138000", "13800138000"),  # any form in, the TON's form out
    (1, "+86 138 0013 8000", "8613800138000"),
])
async def test_the_destination_takes_the_form_of_its_ton(ton: int, to: str,
                                                         address: str) -> None:
    """A strict SMSC reads the address by its TON: 13800138000 under TON 1
    would be +1 380..., so the transport writes what the TON says."""
    smsc = FakeSmsc(password="secret")
    await smsc.start()
    transport = SmppTransport(config(smsc.port, dest_ton=ton, dest_npi=1), country="86")
    h = Harness(smsc, transport)
    await transport.start(h.on_receipt, h.on_inbound)
    try:
        assert await transport.wait_bound(5.0)
        await transport.send(OutgoingSms(1, to, "hi"))
        (s,) = await smsc.wait_submits(1)
        assert (s.destination, s.dest_ton, s.dest_npi) == (address, ton, 1)
    finally:
        await transport.close()
        await smsc.stop()


async def test_a_foreign_number_under_the_national_ton_is_refused_not_sent(
        h: Harness) -> None:
    transport = SmppTransport(config(h.smsc.port, dest_ton=2))
    await transport.start(h.on_receipt, h.on_inbound)
    try:
        assert await transport.wait_bound(3.0)
        with pytest.raises(PermanentSmsError, match=r"\+16502530000 is a foreign number.*"
                                                    r"dest_ton 2 \(national\)"):
            await transport.send(OutgoingSms(1, "0016502530000", "hi"))
        await transport.send(OutgoingSms(2, "13800138000", "hi"))  # a Chinese one goes
        (s,) = await h.smsc.wait_submits(1)
        assert (s.destination, s.dest_ton) == ("13800138000", 2)
    finally:
        await transport.close()


def test_destination_refuses_what_its_ton_cannot_carry() -> None:
    with pytest.raises(PermanentSmsError, match="not a full international number"):
        destination("10086", 1)  # a short code has no international form
    assert destination("10086", 0) == destination("10086", 2) == "10086"
    # a country without a numbering plan here: its own numbers have no national form
    with pytest.raises(PermanentSmsError, match="without a national form"):
        destination("+447911123456", 2, "44")
    assert destination("+447911123456", 0, "44") == "00447911123456"
    with pytest.raises(PermanentSmsError, match="not a full international number"):
        destination("13800138000", 1, "44")  # not a number of 44 that can be read
