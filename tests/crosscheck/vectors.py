#!/usr/bin/env python3
"""Checks testdata/vectors against an independent implementation.

Recomputes the handshake, key schedule, every sealed frame and the tickets
of the MyClerk wire profile (PROFILE.md) with Python's `cryptography`
package, from the formulas in PROFILE.md alone, and compares them with the
vector files the Go code wrote. Prints one line per check and exits non-zero
on the first mismatch. Needs `cryptography` (pip install cryptography).
"""
import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

VEC = Path(__file__).resolve().parents[2] / "testdata" / "vectors"
checks = 0


def load(name):
    return json.loads((VEC / name).read_text())["vectors"]


def h(s):
    return bytes.fromhex(s)


def same(what, got, want):
    global checks
    if got != want:
        print(f"MISMATCH {what}:\n  got  {got.hex() if isinstance(got, bytes) else got}\n  want {want.hex() if isinstance(want, bytes) else want}")
        sys.exit(1)
    checks += 1


def hkdf(ikm, salt, info):
    return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)


def expand(prk, info, n):
    return HKDFExpand(hashes.SHA256(), n, info).derive(prk)


def directional(chain, th, d):
    return (expand(chain, b"myclerk-v0 key " + d + th, 32),
            expand(chain, b"myclerk-v0 random " + d + th, 4),
            expand(chain, b"myclerk-v0 mac " + d + th, 32))


def chain_key(sk, epoch):
    k = sk
    for e in range(1, epoch + 1):
        k = hkdf(k, b"rotate", struct.pack(">I", e))
    return k


# Handshake and key schedule.
hs = load("keyschedule.json")[0]
ip = X25519PrivateKey.from_private_bytes(h(hs["initiator_ephemeral_private"]))
rp = X25519PrivateKey.from_private_bytes(h(hs["responder_ephemeral_private"]))
same("initiator public", ip.public_key().public_bytes_raw(), h(hs["initiator_ephemeral_public"]))
shared = ip.exchange(X25519PublicKey.from_public_bytes(h(hs["responder_ephemeral_public"])))
same("shared secret", shared, h(hs["shared_secret"]))
init, ack = h(hs["session_init_frame"]), h(hs["session_ack_frame"])
same("SESSION_INIT digest trailer", init[-16:], hashlib.sha256(init[:-16]).digest()[:16])
same("SESSION_INIT flags (tier 4, E=0)", init[0], 0x20)
same("SESSION_INIT carries the initiator key", init[16:48], h(hs["initiator_ephemeral_public"]))
same("SESSION_INIT payload", init[48:-16], h(hs["session_init_payload"]))
sk = hkdf(shared, h(hs["initiator_nonce"]) + h(hs["responder_nonce"]), b"myclerk-session-v0")
same("session key (draft 5.1)", sk, h(hs["session_key"]))
th = hashlib.sha256(init + ack).digest()
same("transcript hash", th, h(hs["transcript_hash"]))
same("resumption secret", expand(sk, b"myclerk-v0 resumption" + th, 32), h(hs["resumption_secret"]))
for e in hs["epochs"]:
    c = chain_key(sk, e["epoch"])
    same(f"epoch {e['epoch']} chain key", c, h(e["chain_key"]))
    for d in ("i2r", "r2i"):
        k, r, m = directional(c, th, d.encode())
        same(f"epoch {e['epoch']} {d} key", k, h(e[d]["key"]))
        same(f"epoch {e['epoch']} {d} random", r, h(e[d]["random"]))
        same(f"epoch {e['epoch']} {d} mac", m, h(e[d]["mac_key"]))


def seal(v):
    """Builds the frame of a sealed vector from PROFILE.md §P1, §P4, §P8, §P9, §P13, §P23."""
    km = v["keys"]
    d = v["direction"].encode()
    key, rnd, mac = directional(chain_key(h(km["session_key"]), v["epoch"]), h(km["transcript_hash"]), d)
    ctr, tier = v["counter"], v["tier"]
    op = {"GPIO_LINE_SET": 0x0624, "GPIO_LINE_GET": 0x0625, "KEEPALIVE": 0x0001, "DEVICE_LIST": 0x0200,
          "STREAM_DATA": 0x0212, "DEVICE_INFO": 0x0201, "KEY_EXCHANGE_INIT": 0x0010, "SESSION_ROTATE": 0x0016,
          "DEVICE_LOCK": 0x0204, "DEVICE_UNLOCK": 0x0205, "GPU_REQUEST": 0x0220, "TUNNEL": 0x00F0}[v["op"]]
    frag = v.get("fragment")
    enc = v["encrypted"]
    flags = tier << 3 | (4 if v.get("compressed") else 0) | (2 if frag else 0) | (1 if enc else 0)
    hdr = struct.pack(">BHBHIH", flags, op, ctr & 0xFF, v["session_id"], v["timestamp"], (ctr >> 8) & 0xFFFF)
    if tier >= 4:
        pub = km["initiator_key"] if v["direction"] == "i2r" else km["responder_key"]
        hdr += struct.pack(">I", v["epoch"]) + h(pub)
    sub = struct.pack(">IHH", frag["message_id"], frag["index"], frag["total"]) if frag else b""
    nonce = struct.pack(">I", v["timestamp"]) + rnd + struct.pack(">I", ctr)
    same(f"{v['name']}: aead nonce", nonce, h(v["aead_nonce"]))
    pt = h(v["plaintext"])
    # PROFILE.md §P23: the session's AEAD; absent means ChaCha20-Poly1305.
    aead = {"chacha20-poly1305": ChaCha20Poly1305, "aes-256-gcm": AESGCM}[km.get("aead", "chacha20-poly1305")](key)
    if tier < 5:
        if enc:
            return hdr + sub + aead.encrypt(nonce, pt, hdr + sub)
        return hdr + sub + pt + aead.encrypt(nonce, b"", hdr + sub + pt)
    if enc:
        ct = aead.encrypt(nonce, pt, hdr + sub)
        body, tag = ct[:-16], ct[-16:]
    else:
        body, tag = pt, aead.encrypt(nonce, b"", hdr + sub + pt)
    frame = hdr + tag + sub + body
    return frame + hmac.new(mac, frame, hashlib.sha256).digest()


for name in ("sealed.json", "rotation.json"):
    for v in load(name):
        same(f"{name} {v['name']}", seal(v), h(v["frame"]))

for v in load("tickets.json"):
    if v.get("reason"):
        continue
    kid = struct.pack(">I", v["key_id"])
    pt = (h(v["resumption_secret"]) + h(v["device_id"]) + struct.pack(">II", v["issued_at"], v["expires_at"])
          + h(v["ticket_nonce"]))
    t = kid + h(v["gcm_nonce"]) + AESGCM(h(v["key"])).encrypt(h(v["gcm_nonce"]), pt, kid)
    same(f"ticket {v['name']}", t, h(v["ticket"]))

for v in load("crc.json"):
    c = 0xFFFF
    for b in h(v["input"]):
        c ^= b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    same(f"crc {v['name']}", f"{c:04x}", v["crc"])



def split_container(b):
    """PROFILE.md §P36: 0x00 then (u32 big-endian length, frame)*, each
    length 1 to 1 MiB, filling the message; None if malformed."""
    if not b or b[0] != 0:
        return None
    frames, i = [], 1
    while i < len(b):
        if i + 4 > len(b):
            return None
        (n,) = struct.unpack(">I", b[i:i + 4])
        if n == 0 or n > 1 << 20 or i + 4 + n > len(b):
            return None
        frames.append(b[i + 4:i + 4 + n])
        i += 4 + n
    return frames or None


for v in load("containers.json"):
    got = split_container(h(v["container"]))
    want = [h(f) for f in v["frames"]] if "frames" in v else None
    same(f"container {v['name']}", got, want)

print(f"crosscheck: {checks} checks passed against an independent implementation")
