"""What the TPM and tpm2-tools marshal, written by the tests (the modules only parse them).

Shared by the quote verification tests and the keylime cross-check, which hands keylime tpm2-tools' PCR file."""

from __future__ import annotations

import struct

from ansible_collections.tpmfleet.tpm.plugins.module_utils import quote_verify as qv


def marshal_pcr_selection(selection):
    """TPML_PCR_SELECTION bytes for ``[(bank, indices)]``."""
    out = struct.pack(">I", len(selection))
    for bank, indices in selection:
        bitmap = bytearray(qv.PCR_SELECT_BYTES)
        for i in indices:
            bitmap[i // 8] |= 1 << (i % 8)
        out += struct.pack(">HB", qv.HASH_ALGS[bank], qv.PCR_SELECT_BYTES) + bytes(bitmap)
    return out


def tpm2_tools_pcrs_file(selection, pcr_values):
    """PCR values in tpm2-tools' "serialized" PCR file format (what ``tpm2_quote -F serialized -o``
    writes and ``tpm2_checkquote -f`` reads without ``-l``): the host-endian C structs
    TPML_PCR_SELECTION (16 banks), a UINT32 count, then that many TPML_DIGEST (8 digests each).

    tpm2_checkquote 5.4 fails on the "values" format with ``-l``, so export this one."""
    if len(selection) > 16:
        raise qv.QuoteFormatError("at most 16 PCR banks")
    out = struct.pack("<I", len(selection))
    for bank, indices in selection:
        bitmap = bytearray(4)
        for i in indices:
            bitmap[i // 8] |= 1 << (i % 8)
        out += struct.pack("<HB", qv.HASH_ALGS[bank], qv.PCR_SELECT_BYTES) + bytes(bitmap) + b"\x00"
    out += b"\x00" * 8 * (16 - len(selection))
    flat = qv.pcr_values_in_order(selection, pcr_values)
    digests = []
    pos = 0
    for bank, indices in selection:
        for _index in indices:
            size = qv.HASH_SIZES[bank]
            digests.append(flat[pos : pos + size])
            pos += size
    chunks = [digests[i : i + 8] for i in range(0, len(digests), 8)]
    out += struct.pack("<I", len(chunks))
    for chunk in chunks:
        out += struct.pack("<I", len(chunk))
        for d in chunk:
            out += struct.pack("<H", len(d)) + d + b"\x00" * (64 - len(d))
        out += (struct.pack("<H", 0) + b"\x00" * 64) * (8 - len(chunk))
    return out
