#!/usr/bin/env python3
"""WeChat's safe-mode message encryption, written independently of the
service's Rust code with Python's `cryptography` (OpenSSL): the tests check
that each side opens what the other sealed.

    wechat_crypto.py encrypt ENCODING_AES_KEY APPID   (message on stdin, Encrypt on stdout)
    wechat_crypto.py decrypt ENCODING_AES_KEY APPID   (Encrypt on stdin, message on stdout)
"""

import base64
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def key_of(encoding_aes_key):
    return base64.b64decode(encoding_aes_key + "=")


def encrypt(key, appid, message):
    plain = os.urandom(16) + struct.pack(">I", len(message)) + message + appid.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize())


def decrypt(key, appid, sealed):
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(base64.b64decode(sealed)) + dec.finalize()
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    message, tail = plain[20 : 20 + length], plain[20 + length :]
    if tail != appid.encode():
        sys.exit(f"sealed for {tail!r}, not {appid}")
    return message


if __name__ == "__main__":
    command, encoding_aes_key, appid = sys.argv[1:4]
    data = sys.stdin.buffer.read()
    key = key_of(encoding_aes_key)
    out = encrypt(key, appid, data) if command == "encrypt" else decrypt(key, appid, data.strip())
    sys.stdout.buffer.write(out)
