"""SMPP 3.4 message codec: the parts of ``submit_sm`` and ``deliver_sm`` that
are ours to encode and decode.  Pure: bytes in, typed values out.

smpp34 frames the PDUs; what it leaves to us, and what is here:

* the encoding and the split (:func:`split_message`): GSM 03.38 7-bit
  (``data_coding`` 0, one septet per octet, the extension table costing two)
  when every character fits, else UCS-2 (UTF-16-BE, ``data_coding`` 8, characters
  outside the BMP as surrogate pairs).  Long texts go out as concatenated parts
  with a UDH (IEI 0x00, 8-bit reference, ``esm_class`` 0x40): 153 septets or 67
  UTF-16 units a part (160 / 70 for a message of one part);
* the text of an inbound message (:func:`decode_short_message`, by
  ``data_coding``: GSM 7-bit, ASCII, Latin-1, UCS-2 ...) and its
  concatenation header (:func:`parse_udh`);
* ``submit_sm_resp`` statuses: their names, and which say that a message will
  never go (:data:`PERMANENT_STATUSES`) rather than "try again later";
* receipts: whether a ``deliver_sm`` is one (:func:`is_receipt`, ``esm_class``
  0x04 or 0x20), and its message id and state (:func:`parse_receipt`: the
  ``receipted_message_id`` and ``message_state`` TLVs, else the ``id:`` and
  ``stat:`` of the receipt text); message ids spelt in another base
  (:func:`normalize_id`).

The session, the binds and what to do with a receipt or a reply are the
transport's (:mod:`acd.adapters.sms_smpp`).

Errors, for any input whatever: the decoders (:func:`decode_short_message`,
:func:`gsm7_decode`, :func:`parse_udh`, :func:`parse_receipt`,
:func:`normalize_id`, :func:`status_name`) never raise (what an SMSC sends
that does not fit reads as U+FFFD, or as no concatenation header);
:func:`split_message` raises only ``ValueError``, for a text of more than
255 parts or one that is not Unicode text (a lone surrogate).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# -- data coding and the split ---------------------------------------------

DC_GSM7 = 0x00  # SMSC default alphabet: GSM 03.38, unpacked (one septet per octet)
DC_UCS2 = 0x08
ESM_UDHI = 0x40

GSM7_SINGLE, GSM7_PART = 160, 153  # septets
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units
MAX_PARTS = 255

# GSM 03.38 default alphabet, by code (0x1B is the escape to the extension table).
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_GSM_ESC = 0x1B
_GSM_EXT = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
            "]": 0x3E, "|": 0x40, "€": 0x65}
_GSM_ENCODE: dict[str, bytes] = {ch: bytes([i]) for i, ch in enumerate(_GSM_BASIC)
                                 if i != _GSM_ESC}
_GSM_ENCODE.update({ch: bytes([_GSM_ESC, code]) for ch, code in _GSM_EXT.items()})
_GSM_DECODE_EXT = {code: ch for ch, code in _GSM_EXT.items()}


def gsm7_encode(text: str) -> bytes | None:
    """``text`` as unpacked GSM 03.38 septets, or None if a character does not fit."""
    try:
        return b"".join(_GSM_ENCODE[ch] for ch in text)
    except KeyError:
        return None


def gsm7_decode(data: bytes) -> str:
    out: list[str] = []
    escaped = False
    for b in data:
        if escaped:
            out.append(_GSM_DECODE_EXT.get(b, " "))
            escaped = False
        elif b == _GSM_ESC:
            escaped = True
        else:
            out.append(_GSM_BASIC[b & 0x7F])
    return "".join(out)


def split_message(text: str, ref: int = 0) -> tuple[int, list[bytes]]:
    """The ``data_coding`` and the ``short_message`` of each part for ``text``.

    GSM 7-bit when every character is in the GSM 03.38 default alphabet or its
    extension table (an extension character costs two septets and is never cut
    from its escape), else UCS-2 (a surrogate pair is never cut).  One part
    without a UDH up to 160 septets / 70 units; beyond, parts of at most 153
    septets / 67 units, each behind the 6-octet UDH ``05 00 03 ref total seq``.
    Raises ValueError past 255 parts, or for a lone surrogate (no UTF-16).
    """
    # Each character's bytes: 1 or 2 septets (one an octet), or 2 or 4 UTF-16 octets.
    gsm = [_GSM_ENCODE.get(ch) for ch in text]
    chars: list[bytes]
    if all(c is not None for c in gsm):
        dc, chars = DC_GSM7, [c for c in gsm if c is not None]
        single, per_part = GSM7_SINGLE, GSM7_PART  # octets, as septets are one each
    else:
        dc, chars = DC_UCS2, []
        for i, ch in enumerate(text):
            try:
                chars.append(ch.encode("utf-16-be"))
            except UnicodeEncodeError:
                raise ValueError(f"text holds {ch!r} at character {i}, which is not "
                                 "Unicode text") from None
        single, per_part = 2 * UCS2_SINGLE, 2 * UCS2_PART
    if sum(len(c) for c in chars) <= single:
        return dc, [b"".join(chars)]
    chunks: list[bytearray] = [bytearray()]
    for c in chars:
        if len(chunks[-1]) + len(c) > per_part:
            chunks.append(bytearray())
        chunks[-1] += c
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"text needs {len(chunks)} parts; at most {MAX_PARTS}")
    total = len(chunks)
    return dc, [bytes([5, 0x00, 3, ref & 0xFF, total, seq]) + bytes(chunk)
                for seq, chunk in enumerate(chunks, 1)]


# SMPP 3.4 data_coding 0x01-0x0E (5.2.19); 0x0F is GB 2312/GBK on Chinese gateways (CMPP's 15).
_SMPP_CODECS = {0x01: "ascii", 0x02: "latin-1", 0x03: "latin-1", 0x04: "latin-1",
                0x06: "iso8859_5", 0x07: "iso8859_8", 0x08: "utf-16-be", 0x0E: "euc_kr",
                0x0F: "gbk"}


def decode_short_message(data: bytes, data_coding: int) -> str:
    """The text of an inbound message (UDH already removed), by its ``data_coding``."""
    dc = data_coding
    codec = _SMPP_CODECS.get(dc)
    if codec is None:
        if 0x10 <= dc <= 0x3F:  # GSM 03.38 general data coding, with a message class
            codec = ("gsm", "latin-1", "utf-16-be", "latin-1")[(dc >> 2) & 3]
        elif dc == 0x00 or 0xC0 <= dc <= 0xDF:
            codec = "gsm"
        elif 0xE0 <= dc <= 0xEF:
            codec = "utf-16-be"
        elif 0xF0 <= dc:
            codec = "latin-1" if dc & 0x04 else "gsm"
        else:
            codec = "latin-1"
    if codec == "gsm":
        if any(b > 0x7F for b in data):  # not septets: an SMSC that means Latin-1 by 0
            return data.decode("latin-1")
        return gsm7_decode(data)
    return data.decode(codec, errors="replace")


def parse_udh(data: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """(ref, total, seq) of a concatenation IE if any, and the payload after the UDH.

    Never raises: an IE cut short by the end of the header is ignored."""
    if not data:
        return None, data
    udhl = data[0]
    udh, payload = data[1 : 1 + udhl], data[1 + udhl :]
    pos, concat = 0, None
    while pos + 2 <= len(udh):
        iei, length = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + length]
        if len(value) < length:  # cut short by the end of the header
            break
        if iei == 0x00 and length == 3:
            concat = (value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            concat = ((value[0] << 8) | value[1], value[2], value[3])
        pos += 2 + length
    return concat, payload


# -- submit statuses ---------------------------------------------------------

STATUS_NAMES: dict[int, str] = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID", 0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND",
    0x06: "ESME_RINVPRTFLG", 0x07: "ESME_RINVREGDLVFLG", 0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL", 0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID",
    0x14: "ESME_RMSGQFUL", 0x15: "ESME_RINVSERTYP", 0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME", 0x40: "ESME_RINVDESTFLAG", 0x42: "ESME_RINVSUBREP",
    0x43: "ESME_RINVESMCLASS", 0x44: "ESME_RCNTSUBDL", 0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI", 0x50: "ESME_RINVDSTTON",
    0x51: "ESME_RINVDSTNPI", 0x53: "ESME_RINVSYSTYP", 0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS", 0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY", 0x63: "ESME_RINVDFTMSGID", 0x64: "ESME_RX_T_APPN",
    0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN", 0x67: "ESME_RQUERYFAIL",
    0xC0: "ESME_RINVOPTPARSTREAM", 0xC1: "ESME_ROPTPARNOTALLWD", 0xC2: "ESME_RINVPARLEN",
    0xC3: "ESME_RMISSINGOPTPARAM", 0xC4: "ESME_RINVOPTPARAMVAL", 0xFE: "ESME_RDELIVERYFAILURE",
    0xFF: "ESME_RUNKNOWNERR",
}

# Statuses that say *this message* will never be accepted.  Everything else
# (THROTTLED, MSGQFUL, SYSERR, SUBMITFAIL, X_T_APPN, bind-state errors,
# UNKNOWNERR and vendor codes 0x400-0x4FF) is worth another try later: a
# wrongly temporary status costs the sender's bounded retries, a wrongly
# permanent one loses the message.
PERMANENT_STATUSES = frozenset({
    0x01, 0x02, 0x03, 0x06, 0x07, 0x0A, 0x0B, 0x15, 0x33, 0x34, 0x40, 0x42, 0x43, 0x48, 0x49,
    0x50, 0x51, 0x53, 0x54, 0x55, 0x61, 0x62, 0x63, 0x65, 0x66, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4,
})


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08X}")


# -- receipts ------------------------------------------------------------------

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_MESSAGE_PAYLOAD = 0x0424

ESM_TYPE_MASK = 0x3C
ESM_RECEIPT = 0x04  # SMSC delivery receipt
ESM_INTERMEDIATE = 0x20  # intermediate delivery notification

MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                  6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
DELIVERED_STATES = frozenset({"DELIVRD", "DELIVERED"})
NON_FINAL_STATES = frozenset({"ENROUTE", "ACCEPTD", "ACCEPTED", "BUFFRED", "BUFFERED",
                              "SUBMITD", "SUBMITTED", "SCHEDULED", "SCHEDUL"})

_ID_RE = re.compile(rb"\bid:\s*([^\s]+)", re.IGNORECASE)
_STAT_RE = re.compile(rb"\bstat:\s*([A-Za-z_]+)", re.IGNORECASE)


def is_receipt(esm_class: int) -> bool:
    return esm_class & ESM_TYPE_MASK in (ESM_RECEIPT, ESM_INTERMEDIATE)


def parse_receipt(short_message: bytes, tlvs: Iterable[tuple[int, bytes]]) -> tuple[str, str]:
    """(message id, state) of a receipt; either may be "" when the SMSC left it out."""
    rid, state = "", ""
    for tag, value in tlvs:
        if tag == TLV_RECEIPTED_MESSAGE_ID:
            rid = value.rstrip(b"\0").decode("latin-1").strip()
        elif tag == TLV_MESSAGE_STATE and value:
            state = MESSAGE_STATES.get(value[0], "UNKNOWN")
    if not rid and (m := _ID_RE.search(short_message)):
        rid = m.group(1).decode("latin-1")
    if not state and (m := _STAT_RE.search(short_message)):
        state = m.group(1).decode("latin-1").upper()
    return rid, state


def normalize_id(message_id: str, base: int | None) -> str:
    """``message_id`` read as a number in ``base``, in decimal; as it is if it is not one."""
    if base is None:
        return message_id
    try:
        return str(int(message_id, base))
    except ValueError:
        return message_id
