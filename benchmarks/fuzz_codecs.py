"""Fuzz the AMI and AGI codecs: only their documented errors, work bounded.

    .venv/bin/python benchmarks/fuzz_codecs.py [--cases 100000] [--seed 20261123]
        [--bound-s 2.0] [--case N] [--framing]

Runs ``--cases`` cases (default 100,000) across the AMI and AGI codecs of
``acd/protocols``: the real Asterisk 22 recordings (``../shared/
asterisk-transcripts/`` and ``tests/data/asterisk-transcripts/``) mutated
(bytes flipped, inserted, cut, repeated; line ends changed; numbers of
thousands of digits; bytes that are not UTF-8), random bytes, every input
fed in random reads, never-ending messages and 520 bodies, and the encoders
given any text; and, a few, the SMPP message codec.  A case fails when

* an exception other than the documented one escapes (``AmiProtocolError``,
  ``AgiProtocolError``; ``AmiEncodeError`` / ``AgiEncodeError`` from the
  encoders),
* the decoders give other items for the same bytes cut into other reads,
  or what an encoder accepted does not decode back to what it was given,
* a bound does not hold (a 520 body kept past its cap, a search looking at
  more than the input plus 3 bytes a read), or
* the case runs over ``--bound-s`` (stopped by an alarm: a hang).

Prints the cases, the failures (the first ones with their ``--case``
number, to run one again alone), the slowest case, and per codec and kind
the cases, refusals (documented errors), time and throughput.  Exit status
1 if any case failed.

``--framing`` instead measures the framing work for the issue's figures:
the AMI decoder given 1 MiB in 64-byte reads (until its cap refuses it),
the AGI request reader given 16 KiB a byte at a time, and a never-ending 520
body of a million lines.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acd.protocols import agi, ami, smpp  # noqa: E402
from acd.protocols.agi import (  # noqa: E402
    AgiEncodeError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiResult,
    ReplyParser,
    RequestReader,
)
from acd.protocols.ami import (  # noqa: E402
    AmiDecoder,
    AmiEncodeError,
    AmiFrameError,
    AmiItem,
    AmiMessage,
    AmiProtocolError,
    ResponseCollector,
)

TRANSCRIPT_DIRS = (ROOT.parent / "shared" / "asterisk-transcripts",
                   ROOT / "tests" / "data" / "asterisk-transcripts")


@dataclass
class Record:
    """What a case was given (set before its checks, so a failure shows it)
    and how much it handled."""

    sample: bytes = b""
    units: int = 0

    def done(self, sample: bytes, units: int) -> None:
        self.sample, self.units = sample, units


class Failure(Exception):
    """A property of the codec did not hold."""


#: documented errors raised (and frame errors returned), by type: shows the
#: cases reach the refusals, not only the happy paths
REFUSALS: Counter[str] = Counter()


def note_refusal(exc: Exception) -> None:
    REFUSALS[type(exc).__name__] += 1


class Hang(BaseException):
    """The case ran over its time bound (raised by the alarm)."""


# ------------------------------------------------------------------ corpus


@dataclass
class Corpus:
    files: int = 0
    ami_server: list[bytes] = field(default_factory=list)  # banner + every AMI <<
    ami_client: list[bytes] = field(default_factory=list)  # every AMI >>
    ami_frames: list[bytes] = field(default_factory=list)  # one frame each, with its end
    agi_envs: list[bytes] = field(default_factory=list)  # request header + empty line
    agi_replies: list[str] = field(default_factory=list)
    agi_commands: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def load_corpus() -> Corpus:
    """The recordings' blocks (``--- <kind> t=<seconds>`` then the lines)."""
    corpus = Corpus()
    seen: set[bytes] = set()
    for folder in TRANSCRIPT_DIRS:
        if not folder.is_dir():
            continue
        corpus.sources.append(str(folder))
        for path in sorted(folder.glob("*.txt")):
            data = path.read_bytes()
            if data in seen:
                continue
            seen.add(data)
            corpus.files += 1
            _read_transcript(data.decode("utf-8"), corpus)
    if not corpus.ami_server:  # no recordings: a few built-in ones
        corpus.sources.append("built-in samples")
        frame = b"Event: Newchannel\r\nChannel: Local/s@caller-1;1\r\nCallerIDNum: 13800138000\r\n"\
                b"CallerIDName: \xe5\xbc\xa0\xe4\xb8\x89\r\nUniqueid: 1.1\r\n\r\n"
        corpus.ami_server.append(b"Asterisk Call Manager/11.0.0\r\n" + frame)
        corpus.ami_client.append(b"Action: Login\r\nActionID: login\r\nUsername: acd\r\n\r\n")
        corpus.ami_frames.append(frame)
        corpus.agi_envs.append(b"agi_network: yes\nagi_network_script: hotline\n"
                               b"agi_callerid: 13800138000\nagi_calleridname: Zhang\n\n")
        corpus.agi_replies += ["200 result=0", "200 result=1 (13800138000)",
                               "200 result=49 endpos=9760", "200 result=2 (timeout)", "HANGUP"]
        corpus.agi_commands += ["ANSWER", 'STREAM FILE hello-world "0123456789#*"']
    return corpus


def _read_transcript(text: str, corpus: Corpus) -> None:
    blocks: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        if line.startswith("--- ") and " t=" in line:
            blocks.append((line[4:line.rindex(" t=")], []))
        elif blocks:
            blocks[-1][1].append(line)
    server: list[bytes] = []
    client: list[bytes] = []
    for kind, lines in blocks:
        while lines and lines[-1] == "":
            lines.pop()
        if not lines:
            continue
        if kind == "AMI banner":
            server.append((lines[0] + "\r\n").encode())
        elif kind in ("AMI <<", "AMI >>"):
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
            (server if kind == "AMI <<" else client).append(raw)
            corpus.ami_frames.append(raw)
        elif kind == "AGI env":
            corpus.agi_envs.append("".join(f"{x}\n" for x in lines).encode() + b"\n")
        elif kind == "AGI <<":
            corpus.agi_replies.append(lines[0])
        elif kind == "AGI >>":
            corpus.agi_commands.append(lines[0])
    if server:
        corpus.ami_server.append(b"".join(server))
    if client:
        corpus.ami_client.append(b"".join(client))


# --------------------------------------------------------------- mutation

_PIECES = [b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"\n\n", b":", b": ", b" ", b"=", b",", b"(",
           b")", b"\x00", b"\xff", b"\xe5\xbc", b"\xd5\xc5\xc8\xfd", b"\xed\xa0\x80",
           b"\xf4\x90\x80\x80", b"\x1b[31m", b"Event: ", b"ActionID: ", b"Response: ",
           b"EventList: start", b"Variable: ", b"agi_", b"agi_arg_1: ", b"520-", b"520 ",
           b"200 result=", b" endpos=", b"HANGUP", b"-1", b"1114112", b"\xc2\xb2\xc2\xb2\xc2\xb2"]


def huge_number(rng: random.Random) -> bytes:
    n = rng.choice((19, 20, 40, 4300, 4301, rng.randint(1, 6000)))
    return (b"-" if rng.random() < 0.2 else b"") + b"9" * n


def mutate(rng: random.Random, data: bytes, rounds: int = 0) -> bytes:
    out = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        op = rng.randrange(9)
        pos = rng.randint(0, len(out))
        if op == 0 and out:  # flip a byte
            i = rng.randrange(len(out))
            out[i] = rng.randrange(256)
        elif op == 1:  # insert a piece
            out[pos:pos] = rng.choice(_PIECES)
        elif op == 2 and out:  # cut a range
            out[pos:pos + rng.randint(1, 64)] = b""
        elif op == 3 and out:  # repeat a range
            a = rng.randrange(len(out))
            piece = out[a:a + rng.randint(1, 200)]
            out[pos:pos] = piece * rng.randint(1, 20)
        elif op == 4:  # a number of many digits
            out[pos:pos] = huge_number(rng)
        elif op == 5:  # other line ends
            old, new = rng.choice(((b"\r\n", b"\n"), (b"\n", b"\r\n"), (b"\r\n", b"\r"),
                                   (b"\n", b""), (b"\r\n\r\n", b"\r\n")))
            out = bytearray(bytes(out).replace(old, new, rng.randint(1, 3)))
        elif op == 6:  # bytes that are not UTF-8
            out[pos:pos] = rng.choice((b"\xff", b"\xe5\xbc", b"\xd5\xc5", b"\x80", b"\xc0\xaf"))
        elif op == 7:  # random bytes
            out[pos:pos] = rng.randbytes(rng.randint(1, 16))
        else:  # truncate
            del out[pos:]
    return bytes(out)


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    """``data`` cut into reads: mostly small, some large, some one byte each."""
    style = rng.randrange(4)
    if style == 0:
        return [data]
    if style == 1 and len(data) < 4000:
        return [data[i:i + 1] for i in range(len(data))]
    out, pos = [], 0
    while pos < len(data):
        size = rng.choice((rng.randint(1, 7), rng.randint(8, 200), rng.randint(200, 5000)))
        out.append(data[pos:pos + size])
        pos += size
    return out or [b""]


def text(rng: random.Random, n: int = 30) -> str:
    """Any text: ASCII, CJK, line breaks, controls, astral, lone surrogates."""
    alphabet = ("abcXYZ019 :=,()\"\\\t", "\r\n", "\x00\x1b\x85\u2028", "张三丰",
                "\U0001f600\U0010ffff", "\ud800\udc80\udcff")
    weights = (60, 5, 3, 10, 3, 2)
    return "".join(rng.choice(rng.choices(alphabet, weights)[0])
                   for _ in range(rng.randint(0, n)))


# ------------------------------------------------------------------ checks


def _ami_run(data_chunks: list[bytes], banner: bool, max_message: int,
             events: frozenset[str] | None) -> tuple[list[AmiItem], bool, int]:
    decoder = AmiDecoder(expect_banner=banner, max_message=max_message, events=events)
    items: list[AmiItem] = []
    reads = fed = 0
    try:
        for c in data_chunks:
            reads += 1
            fed += len(c)
            items.extend(decoder.feed(c))
    except AmiProtocolError as exc:
        note_refusal(exc)
        items.extend(exc.items)
        if decoder.searched > fed + 3 * reads:
            raise Failure(f"AMI search looked at {decoder.searched} bytes of {fed}") from None
        return items, True, decoder.skipped
    if decoder.searched > fed + 3 * reads:
        raise Failure(f"AMI search looked at {decoder.searched} bytes of {fed}")
    return items, False, decoder.skipped


def _ami_items_check(items: list[AmiItem]) -> None:
    for item in items:
        if isinstance(item, AmiMessage):
            ami.parse_variables(item)
            ResponseCollector(item.action_id or "").feed(item)
            _ = (item.event, item.is_success, item.starts_event_list, item.ends_event_list)
        elif isinstance(item, AmiFrameError):
            REFUSALS["AmiFrameError (item)"] += 1
            _ = item.bad_line


def case_ami_stream(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    """A recorded AMI stream (either side), mutated, fed in random reads."""
    server = rng.random() < 0.7
    raw = rng.choice(corpus.ami_server if server else corpus.ami_client)
    if rng.random() < 0.9:
        raw = mutate(rng, raw)
    rec.sample = raw
    max_message = rng.choice((64, 512, ami.DEFAULT_MAX_MESSAGE))
    events = rng.choice((None, frozenset({"Hangup", "Newchannel", "DialBegin"})))
    whole = _ami_run([raw], server, max_message, events)
    cut = _ami_run(chunks(rng, raw), server, max_message, events)
    if cut != whole:
        raise Failure("AMI items differ with the reads")
    _ami_items_check(whole[0])
    return rec.done(raw, len(raw) * 2)


def case_ami_random(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    raw = rng.randbytes(rng.randint(0, 2000))
    if rng.random() < 0.5:  # random bytes inside real framing
        raw = b"".join(rng.choice(_PIECES) if rng.random() < 0.5 else raw[i:i + 8]
                       for i in range(0, len(raw), 8))
    banner = rng.random() < 0.3
    rec.sample = raw
    whole = _ami_run([raw], banner, ami.DEFAULT_MAX_MESSAGE, None)
    if _ami_run(chunks(rng, raw), banner, ami.DEFAULT_MAX_MESSAGE, None) != whole:
        raise Failure("AMI items differ with the reads")
    _ami_items_check(whole[0])
    return rec.done(raw, len(raw) * 2)


def case_ami_frame(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    raw = mutate(rng, rng.choice(corpus.ami_frames))
    if raw.endswith(b"\r\n\r\n"):
        raw = raw[:-4]
    rec.sample = raw
    msg = ami.parse_message(raw)
    if not isinstance(msg, AmiMessage | AmiFrameError):
        raise Failure(f"parse_message returned {type(msg).__name__}")
    _ami_items_check([msg])
    return rec.done(raw, len(raw))


def case_ami_encode(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    """Any headers: refused with AmiEncodeError, or decoded back the same."""
    base = ami.parse_message(rng.choice(corpus.ami_frames)[:-4])
    headers = list(base.headers) if isinstance(base, AmiMessage) else []
    for _ in range(rng.randint(0, 3)):
        i = rng.randint(0, len(headers))
        key = text(rng, 12) if rng.random() < 0.5 else rng.choice(("Event", "ActionID", "X"))
        headers.insert(i, (key, text(rng)))
    rec.sample = repr(headers).encode()
    try:
        wire = ami.encode_message(headers)
    except AmiEncodeError as exc:
        note_refusal(exc)
        return rec.done(rec.sample, 0)
    items, refused, _ = _ami_run(chunks(rng, wire), False, ami.DEFAULT_MAX_MESSAGE, None)
    if refused or items != [AmiMessage(tuple(headers))] \
            or list(items[0].headers) != headers:  # type: ignore[union-attr]
        raise Failure(f"encoded headers decode otherwise: {headers[:4]!r}")
    return rec.done(wire, len(wire))


def case_ami_flood(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    """A message that never ends, in 64-byte reads, to the 1 MiB cap."""
    piece = rng.choice((b"\r", b"\r\n\r", b"ChanVariable: x=yyyyyyyyyyyyyyyy\r\n", b"x"))
    read = (piece * (64 // len(piece) + 1))[:64]
    decoder = AmiDecoder(expect_banner=False)
    fed = reads = 0
    try:
        while fed < 2 * ami.DEFAULT_MAX_MESSAGE:
            fed += len(read)
            reads += 1
            decoder.feed(read)
    except AmiProtocolError:
        pass
    else:
        raise Failure("AMI decoder held more than its cap")
    if decoder.searched > fed + 3 * reads:
        raise Failure(f"AMI search looked at {decoder.searched} bytes of {fed}")
    return rec.done(read + b"... (to the cap)", fed)


def _agi_run(data_chunks: list[bytes]) -> tuple[str, object, bytes]:
    reader = RequestReader()
    fed = reads = 0
    for i, c in enumerate(data_chunks):
        fed += len(c)
        reads += 1
        try:
            got = reader.feed(c)
        except AgiProtocolError as exc:
            note_refusal(exc)
            return "error", None, b""
        finally:
            if reader.searched > fed + 3 * reads:
                raise Failure(f"AGI search looked at {reader.searched} bytes of {fed}")
        if got is not None:
            req = got[0]
            _ = (req.channel, req.uniqueid, req.callerid, req.calleridname, req.language)
            return "request", req, got[1] + b"".join(data_chunks[i + 1:])
    return "incomplete", None, b""


def case_agi_request(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    raw = rng.choice(corpus.agi_envs)
    if rng.random() < 0.9:
        raw = mutate(rng, raw)
    if rng.random() < 0.05:  # a header at or past the cap
        raw = raw[:-1] + b"agi_arg_1: " + b"x" * rng.randint(agi.MAX_HEADER_BYTES - 600,
                                                            agi.MAX_HEADER_BYTES + 10) + b"\n\n"
    rec.sample = raw
    whole = _agi_run([raw])
    if _agi_run(chunks(rng, raw)) != whole:
        raise Failure("AGI request differs with the reads")
    try:
        agi.parse_request(raw)
    except AgiProtocolError as exc:
        note_refusal(exc)
    return rec.done(raw, len(raw) * 2)


def case_agi_random(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    raw = rng.randbytes(rng.randint(0, 600))
    if rng.random() < 0.7:
        raw = b"agi_" + b"".join(rng.choice(_PIECES) if rng.random() < 0.5 else raw[i:i + 6]
                                 for i in range(0, len(raw), 6))
    rec.sample = raw
    whole = _agi_run([raw])
    if _agi_run(chunks(rng, raw)) != whole:
        raise Failure("AGI request differs with the reads")
    return rec.done(raw, len(raw) * 2)


_REPLY_FORMS = ["200 result={n}", "200 result={n} endpos={n}", "200 result={n} ({t})",
                "200 result={n} ({t}) endpos={n}", "{c} {t}", "520-{t}", "520 {t}", "HANGUP",
                "{t}"]


def _reply_line(rng: random.Random, corpus: Corpus) -> str:
    if rng.random() < 0.4 and corpus.agi_replies:
        raw = mutate(rng, rng.choice(corpus.agi_replies).encode())
        return raw.decode("utf-8", errors="replace")
    form = rng.choice(_REPLY_FORMS)
    n = rng.choice((str(rng.randint(-2, 255)), huge_number(rng).decode(), "1114112", "55296",
                    "", "*#", "\u0663", "\u00b2"))
    code = rng.choice(("510", "511", "999", "\u00b2\u00b2\u00b2", "\u0663\u0663\u0663", "20"))
    return form.format(n=n, t=text(rng), c=code)


def _check_reply(item: object) -> None:
    if isinstance(item, AgiResult):
        r = item.result
        d = item.digit
        if not isinstance(r, int) or not (d is None or len(d) == 1):
            raise Failure("AgiResult properties")
        _ = item.failed
    elif item is not None and not isinstance(item, AgiError | AgiHangup):
        raise Failure(f"feed_line returned {type(item).__name__}")


def case_agi_replies(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    parser = ReplyParser()
    lines = [_reply_line(rng, corpus) for _ in range(rng.randint(1, 12))]
    rec.sample = repr(lines).encode()
    for line in lines:
        try:
            _check_reply(parser.feed_line(line + rng.choice(("\n", "\r\n", ""))))
        except AgiProtocolError as exc:
            note_refusal(exc)
        try:
            agi.parse_result_line(line)
        except AgiProtocolError as exc:
            note_refusal(exc)
    joined = "\n".join(lines)
    return rec.done(rec.sample, len(joined))


def case_agi_520_flood(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    """A 520 body that does not end: refused at the cap, nothing kept past it."""
    parser = ReplyParser()
    parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n")
    line = rng.choice(("520-Invalid command syntax.  Proper usage follows:\n",
                       " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n",
                       "x" * rng.randint(0, 4000) + "\n", "\n"))
    n = rng.choice((rng.randint(1, 3 * agi.MAX_USAGE_LINES), 20_000))
    rec.sample = line.encode()[:60] + b"... x%d" % n
    flood_refused = 0
    for _ in range(n):
        try:
            parser.feed_line(line)
        except AgiProtocolError as exc:
            note_refusal(exc)
            flood_refused += 1
        if len(parser._usage) > agi.MAX_USAGE_LINES \
                or parser._usage_chars > agi.MAX_USAGE_CHARS + len(line):
            raise Failure("520 body kept past its cap")
    if n > agi.MAX_USAGE_LINES + 1 and flood_refused == 0:
        raise Failure("520 body never refused")
    return rec.done(rec.sample, n * len(line))


def case_agi_commands(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    """Command lines tokenized; the builders given any text."""
    line = mutate(rng, rng.choice(corpus.agi_commands).encode()).decode("utf-8", "replace")
    rec.sample = line.encode()
    agi.tokenize(line)
    words = [text(rng, 10) for _ in range(rng.randint(1, 3))]
    quoted = [text(rng) for _ in range(rng.randint(0, 2))]
    try:
        wire = agi.encode_command(*words, quoted=quoted)
    except AgiEncodeError as exc:
        note_refusal(exc)
        wire = b""
    if wire and all(w and not any(c.isspace() or c in '"\\' for c in w) for w in words):
        if agi.tokenize(wire.decode()) != [*words, *quoted]:
            raise Failure(f"command does not tokenize back: {wire[:80]!r}")
    builders: list[Callable[[], bytes]] = [
        lambda: agi.stream_file(text(rng, 10), text(rng, 5)),
        lambda: agi.set_variable(text(rng, 10), text(rng)),
        lambda: agi.get_data(text(rng, 10), rng.randint(-5, 10**6), rng.randint(-5, 99)),
        lambda: agi.exec_app(text(rng, 10), text(rng)),
        lambda: agi.say_alpha(text(rng, 10)),
        lambda: agi.record_file(text(rng, 10), text(rng, 4), text(rng, 3)),
        lambda: agi.noop(text(rng)),
    ]
    try:
        rng.choice(builders)()
    except AgiEncodeError as exc:
        note_refusal(exc)
    return rec.done(rec.sample, len(line))


def case_agi_encode(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    """Request headers, results and 520s from any text: refused, or read back."""
    kind = rng.randrange(3)
    if kind == 0:
        env = {rng.choice(("agi_", "agi_x", "")) + text(rng, 8): text(rng)
               for _ in range(rng.randint(0, 5))}
        rec.sample = repr(env).encode()
        try:
            wire = agi.encode_request(env)
        except AgiEncodeError as exc:
            note_refusal(exc)
            return rec.done(rec.sample, 0)
        got = RequestReader().feed(wire)
        expect = {k: v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                  for k, v in env.items()}
        if got is None or dict(got[0].env) != expect or got[1]:
            raise Failure(f"request header does not read back: {env!r}")
        return rec.done(wire, len(wire))
    if kind == 1:
        value: int | str = rng.choice((rng.randint(-10**20, 10**20), text(rng, 5), "0123"))
        data = rng.choice((None, text(rng), "timeout"))
        endpos = rng.choice((None, rng.randint(-10**20, 10**20), 0))
        timeout = rng.random() < 0.2
        rec.sample = repr((value, data, endpos, timeout)).encode()
        try:
            wire = agi.encode_result(value, data, endpos=endpos, timeout=timeout)
        except AgiEncodeError as exc:
            note_refusal(exc)
            return rec.done(rec.sample, 0)
        r = ReplyParser().feed_line(wire.decode())
        if not (isinstance(r, AgiResult) and r.value == str(value) and r.endpos == endpos
                and r.timeout is (timeout or data == "timeout")
                and r.data == (None if r.timeout else data)):
            raise Failure(f"result does not read back: {wire!r}")
        return rec.done(wire, len(wire))
    usage = [text(rng) for _ in range(rng.randint(0, 6))]
    rec.sample = repr(usage).encode()
    try:
        wire = agi.encode_520(usage)
    except AgiEncodeError as exc:
        note_refusal(exc)
        return rec.done(rec.sample, 0)
    parser = ReplyParser()
    out = [parser.feed_line(x + "\n") for x in wire.decode().split("\n")[:-1]]
    if out[-1] != AgiError(520, "Invalid command syntax", tuple(usage)):
        raise Failure(f"520 does not read back: {usage!r}")
    return rec.done(wire, len(wire))


def case_agi_script(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    raw = rng.choice(("hotline", "/ivr/sales/", "")) + "?" + "".join(
        rng.choice(("a", "=", "&", ";", "%", "%E5%BC", "%zz", "+", text(rng, 3)))
        for _ in range(rng.randint(0, 30)))
    rec.sample = repr(raw).encode()
    agi.split_script(raw)
    return rec.done(rec.sample, len(raw))


def case_smpp(rng: random.Random, corpus: Corpus, rec: Record) -> None:
    """The SMPP message codec: any short_message / UDH / receipt decoded; any
    text split, its parts read back as the text (or a ValueError)."""
    data = rng.randbytes(rng.randint(0, 200))
    if rng.random() < 0.5:  # a concatenation header, maybe cut short
        data = bytes([5, 0, 3, rng.randrange(256), rng.randrange(256), rng.randrange(256)]
                     )[:rng.randint(1, 6)] + data
    rec.sample = data
    _, payload = smpp.parse_udh(data)
    smpp.decode_short_message(payload, rng.choice((0, 3, 8, 0x0F, 0xE5, rng.randint(-1, 300))))
    smpp.parse_receipt(b"id:" + data + b" stat:" + data,
                       [(rng.choice((smpp.TLV_RECEIPTED_MESSAGE_ID, smpp.TLV_MESSAGE_STATE)),
                         data)])
    smpp.normalize_id(data.decode("latin-1"), rng.choice((None, 10, 16, 36)))
    sms = text(rng, rng.choice((20, 200, 1000)))
    try:
        dc, parts = smpp.split_message(sms, rng.randrange(256))
    except ValueError as exc:
        note_refusal(exc)
        return rec.done(data, len(data))
    payloads = parts if len(parts) == 1 else [smpp.parse_udh(p)[1] for p in parts]
    if smpp.decode_short_message(b"".join(payloads), dc) != sms:
        raise Failure(f"SMS parts do not read back: {sms[:40]!r}")
    return rec.done(data, len(data) + len(sms))


CaseFn = Callable[[random.Random, Corpus, Record], None]
#: (codec, generator, weight)
CASES: list[tuple[str, CaseFn, int]] = [
    ("AMI", case_ami_stream, 14),
    ("AMI", case_ami_random, 12),
    ("AMI", case_ami_frame, 12),
    ("AMI", case_ami_encode, 10),
    ("AMI", case_ami_flood, 0),  # every FLOOD_EVERY-th case
    ("AGI", case_agi_request, 14),
    ("AGI", case_agi_random, 10),
    ("AGI", case_agi_replies, 14),
    ("AGI", case_agi_520_flood, 0),  # every FLOOD_EVERY-th case
    ("AGI", case_agi_commands, 8),
    ("AGI", case_agi_encode, 8),
    ("AGI", case_agi_script, 4),
    ("SMPP", case_smpp, 4),
]
FLOOD_EVERY = 500


def pick(i: int, rng: random.Random) -> tuple[str, CaseFn]:
    if i % FLOOD_EVERY == FLOOD_EVERY - 1:
        return ("AMI", case_ami_flood) if (i // FLOOD_EVERY) % 2 else ("AGI", case_agi_520_flood)
    codec, fn, _ = rng.choices(CASES, [w for _, _, w in CASES])[0]
    return codec, fn


# ------------------------------------------------------------------- runs


@dataclass
class Stats:
    cases: int = 0
    failures: int = 0
    seconds: float = 0.0
    units: int = 0  # bytes (or characters) handled


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang()


def run_case(i: int, seed: int, corpus: Corpus, bound_s: float
             ) -> tuple[str, str, bytes, int, float, str | None]:
    """(codec, kind, input, units, seconds, failure or None) of case ``i``."""
    rng = random.Random(f"{seed}:{i}")
    codec, fn = pick(i, rng)
    kind = fn.__name__.removeprefix("case_").removeprefix("ami_").removeprefix("agi_")
    kind = "message" if kind == "smpp" else kind
    rec = Record()
    failure: str | None = None
    signal.setitimer(signal.ITIMER_REAL, bound_s)
    t0 = time.perf_counter()
    try:
        fn(rng, corpus, rec)
    except Hang:
        failure = f"over {bound_s} s"
    except Failure as exc:
        failure = str(exc)
    except Exception as exc:  # noqa: BLE001 - an undocumented error type: what we are after
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return codec, kind, rec.sample, rec.units, time.perf_counter() - t0, failure


def fuzz(cases: int, seed: int, bound_s: float, only: int | None) -> int:
    corpus = load_corpus()
    print(f"corpus: {corpus.files} recordings from {', '.join(corpus.sources)}: "
          f"{len(corpus.ami_frames)} AMI frames, {len(corpus.agi_envs)} AGI request headers, "
          f"{len(corpus.agi_replies)} AGI replies, {len(corpus.agi_commands)} AGI commands")
    signal.signal(signal.SIGALRM, _alarm)
    stats: dict[tuple[str, str], Stats] = defaultdict(Stats)
    failures: list[tuple[int, str, str, bytes, str]] = []
    slowest = (0.0, -1, "", "", b"")
    t_start = time.perf_counter()
    indices = [only] if only is not None else range(cases)
    for i in indices:
        codec, kind, sample, units, secs, failure = run_case(i, seed, corpus, bound_s)
        st = stats[codec, kind]
        st.cases += 1
        st.seconds += secs
        st.units += units
        if failure is not None:
            st.failures += 1
            failures.append((i, codec, kind, sample, failure))
        if secs > slowest[0]:
            slowest = (secs, i, codec, kind, sample)
        if only is None and (i + 1) % 20_000 == 0:
            print(f"  {i + 1:,} cases, {len(failures)} failures, "
                  f"{time.perf_counter() - t_start:.0f} s", flush=True)
    wall = time.perf_counter() - t_start

    print(f"\n{'codec':5} {'kind':10} {'cases':>8} {'failures':>8} {'time s':>8} "
          f"{'cases/s':>9} {'MB/s':>7}")
    per_codec: dict[str, Stats] = defaultdict(Stats)
    for (codec, kind), st in sorted(stats.items()):
        _row(codec, kind, st)
        pc = per_codec[codec]
        pc.cases += st.cases
        pc.failures += st.failures
        pc.seconds += st.seconds
        pc.units += st.units
    for codec, st in sorted(per_codec.items()):
        _row(codec, "all", st)
    total = sum(st.cases for st in stats.values())
    print("documented refusals: " + ", ".join(f"{k} {v:,}" for k, v in sorted(REFUSALS.items())))
    print(f"\ncases: {total:,}  failures: {len(failures)}  seed: {seed}  "
          f"wall: {wall:.1f} s")
    secs, i, codec, kind, sample = slowest
    print(f"slowest case: #{i} {codec} {kind}, {secs * 1000:.1f} ms: {_short(sample)}")
    for i, codec, kind, sample, why in failures[:20]:
        print(f"FAILED #{i} {codec} {kind}: {why}\n    input {_short(sample)}\n"
              f"    again: .venv/bin/python benchmarks/fuzz_codecs.py --seed {seed} --case {i}")
    return 1 if failures else 0


def _row(codec: str, kind: str, st: Stats) -> None:
    rate = st.cases / st.seconds if st.seconds else 0.0
    mbs = st.units / st.seconds / 1e6 if st.seconds else 0.0
    print(f"{codec:5} {kind:10} {st.cases:>8,} {st.failures:>8} {st.seconds:>8.2f} "
          f"{rate:>9,.0f} {mbs:>7.1f}")


def _short(sample: bytes, n: int = 72) -> str:
    r = repr(sample[:n])
    return r + (f" ... ({len(sample):,} bytes)" if len(sample) > n else "")


# ---------------------------------------------------------------- framing


def framing() -> None:
    """The framing figures of issue 13: CPU seconds and bytes looked at."""
    print("AMI decoder, 1 MiB cap, fed 64-byte reads until the cap refuses the message:")
    for name, piece in (("header lines", b"ChanVariable: x=" + b"y" * 46 + b"\r\n"),
                        ("'\\r\\n\\r' repeated", b"\r\n\r" * 21 + b"x"),
                        ("'\\r' only", b"\r" * 64)):
        decoder = AmiDecoder(expect_banner=False)
        fed = 0
        t0 = time.process_time()
        try:
            while True:
                decoder.feed(piece)
                fed += len(piece)
        except AmiProtocolError:
            pass
        secs = time.process_time() - t0
        print(f"  {name:20} {fed:>9,} bytes in {fed // 64:,} reads: {secs:6.3f} s CPU, "
              f"searched {decoder.searched:,} bytes ({decoder.searched / fed:.2f} per byte)")
    print("AGI request reader, 16 KiB header a byte at a time (refused at the cap):")
    reader = RequestReader()
    raw = b"agi_arg_1: " + b"x" * agi.MAX_HEADER_BYTES
    t0 = time.process_time()
    fed = 0
    try:
        for i in range(len(raw)):
            fed += 1
            reader.feed(raw[i:i + 1])
    except AgiProtocolError:
        pass
    print(f"  {fed:,} reads: {time.process_time() - t0:.3f} s CPU, "
          f"searched {reader.searched:,} bytes")
    print("AGI 520 body of a million lines:")
    parser = ReplyParser()
    parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n")
    refused = held = 0
    t0 = time.process_time()
    for _ in range(1_000_000):
        try:
            parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n")
        except AgiProtocolError:
            refused += 1
        held = max(held, len(parser._usage))
    print(f"  {time.process_time() - t0:.2f} s CPU, refused {refused:,} times, "
          f"at most {held:,} lines held (cap {agi.MAX_USAGE_LINES:,} lines, "
          f"{agi.MAX_USAGE_CHARS:,} characters)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--bound-s", type=float, default=2.0,
                    help="a case running longer than this fails (a hang)")
    ap.add_argument("--case", type=int, default=None, help="run this one case again")
    ap.add_argument("--framing", action="store_true",
                    help="measure the framing work instead of fuzzing")
    args = ap.parse_args()
    if args.framing:
        framing()
        return
    sys.exit(fuzz(args.cases, args.seed, args.bound_s, args.case))


if __name__ == "__main__":
    main()
