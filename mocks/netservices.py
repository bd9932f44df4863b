"""Tiny UDP services of the simulated network: DNS (udp/53) and NTP (udp/123).

Both are real wire-format responders (stdlib ``struct``), enough for a probe:

* DNS: answers a standard query. A names in :class:`DnsZone` get an A record
  (``127.0.0.1`` unless the zone says otherwise); AAAA/other types for a known name
  get NOERROR with no answer; unknown names get NXDOMAIN; garbage gets FORMERR.
* NTP: answers an NTPv3/v4 client packet (mode 3) with a mode-4 server reply carrying
  the simulator's wall clock (:meth:`mocks.clock.SimClock.wall`, i.e. real time + skew).
"""
from __future__ import annotations

import struct
import threading

from .clock import SimClock
from .hub import Endpoint, UdpResult, normalize_address

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
QTYPE_A, QTYPE_AAAA, QTYPE_ANY = 1, 28, 255


class DnsZone:
    """Names the simulated DNS servers know: ``name -> IPv4 answer``."""

    def __init__(self, records: dict[str, str] | None = None):
        self._lock = threading.Lock()
        self._records: dict[str, str] = {}
        for k, v in (records or {}).items():
            self.add(k, v)

    @staticmethod
    def _key(name: str) -> str:
        return normalize_address(name).lower().rstrip(".")

    def add(self, name: str, ip: str = "127.0.0.1") -> None:
        with self._lock:
            self._records[self._key(name)] = ip

    def remove(self, name: str) -> None:
        with self._lock:
            self._records.pop(self._key(name), None)

    def lookup(self, name: str) -> str | None:
        with self._lock:
            return self._records.get(self._key(name))

    def to_dict(self) -> dict[str, str]:
        with self._lock:
            return dict(sorted(self._records.items()))


def _read_name(data: bytes, off: int) -> tuple[str, int]:
    labels = []
    jumps = 0
    end = None
    while True:
        if off >= len(data):
            raise ValueError("truncated name")
        n = data[off]
        if n & 0xC0 == 0xC0:                      # compression pointer (not expected in queries)
            if off + 1 >= len(data) or jumps > 10:
                raise ValueError("bad pointer")
            end = off + 2 if end is None else end
            off = ((n & 0x3F) << 8) | data[off + 1]
            jumps += 1
            continue
        if n == 0:
            off += 1
            break
        if n > 63 or off + 1 + n > len(data):
            raise ValueError("bad label")
        labels.append(data[off + 1: off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels), (end if end is not None else off)


def dns_answer(query: bytes, zone: DnsZone) -> tuple[bytes | None, str, str]:
    """Build the reply for one DNS query. Returns (reply or None, qname, rcode name)."""
    if len(query) < 12:
        return None, "", "FORMERR"
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000:                            # a response, not a query: ignore
        return None, "", "FORMERR"
    opcode = (flags >> 11) & 0xF
    rd = flags & 0x0100

    def header(rcode: int, qd: int, an: int) -> bytes:
        f = 0x8000 | (opcode << 11) | 0x0400 | rd | 0x0080 | rcode
        return struct.pack("!HHHHHH", qid, f, qd, an, 0, 0)

    if opcode != 0:
        return header(4, 0, 0), "", "NOTIMP"
    if qdcount != 1:
        return header(1, 0, 0), "", "FORMERR"
    try:
        qname, off = _read_name(query, 12)
        qtype, qclass = struct.unpack("!HH", query[off: off + 4])
    except (ValueError, struct.error):
        return header(1, 0, 0), "", "FORMERR"
    question = query[12: off + 4]
    ip = zone.lookup(qname)
    if ip is None:
        return header(3, 1, 0) + question, qname, "NXDOMAIN"
    if qtype in (QTYPE_A, QTYPE_ANY) and qclass in (1, 255):
        rr = struct.pack("!HHHIH", 0xC00C, QTYPE_A, 1, 60, 4) + bytes(int(p) for p in ip.split("."))
        return header(0, 1, 1) + question + rr, qname, "NOERROR"
    return header(0, 1, 0) + question, qname, "NOERROR"


def dns_handler(zone: DnsZone):
    def handle(data: bytes, ep: Endpoint) -> UdpResult | None:
        reply, qname, rcode = dns_answer(data, zone)
        return UdpResult(reply, "DNS", qname or "?", rcode)
    return handle


NTP_EPOCH_OFFSET = 2208988800          # 1900-01-01 -> 1970-01-01


def ntp_timestamp(unix: float) -> bytes:
    secs = int(unix) + NTP_EPOCH_OFFSET
    frac = int((unix - int(unix)) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!II", secs & 0xFFFFFFFF, frac)


def ntp_answer(packet: bytes, now: float) -> bytes | None:
    """Server reply (mode 4) to a client packet (mode 3); ``None`` for anything else."""
    if len(packet) < 48:
        return None
    li_vn_mode = packet[0]
    version = (li_vn_mode >> 3) & 0x7
    mode = li_vn_mode & 0x7
    if mode != 3 or version not in (1, 2, 3, 4):
        return None
    poll = packet[2]
    first = (0 << 6) | (version << 3) | 4
    return (struct.pack("!BBbb", first, 2, poll, -20)          # LI=0, stratum 2, precision 2^-20
            + struct.pack("!II", 0x00000100, 0x00000200)      # root delay / dispersion (small)
            + bytes([127, 127, 1, 0])                          # reference id
            + ntp_timestamp(now - 30)                          # reference timestamp
            + packet[40:48]                                    # originate = client's transmit
            + ntp_timestamp(now)                               # receive
            + ntp_timestamp(now))                              # transmit


def ntp_handler(clock: SimClock):
    def handle(data: bytes, ep: Endpoint) -> UdpResult | None:
        reply = ntp_answer(data, clock.wall())
        return UdpResult(reply, "NTP", "/", "reply" if reply else "ignored")
    return handle
