# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one grammar of TCTI strings, and the error every TPM access failure is reported with.

Pure Python on purpose, without tpm2-pytss: the modules check a TCTI with it before they open a TPM
(through module_utils/tcti.py, which imports it), and the controller's filters and checks before a TCTI
is written into a file. Importing tpm2-pytss there cost each task worker that used a filter about 0.1 s
of controller CPU.
"""

from __future__ import annotations

import re


class TpmAccessError(Exception):
    """A classified failure. ``kind`` is machine readable, ``str()`` tells what to do."""

    def __init__(self, kind, msg, **details):
        super().__init__(msg)
        self.kind = kind
        self.msg = msg
        self.details = details


# One grammar for TCTI strings, used by the modules (before they open a TPM) and
# by the controller's filters (before a TCTI is written into a file). Every
# check is a full match: a trailing newline or a control character never passes.
_TCTI_RE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)(?::(?P<conf>[^\x00-\x20\x7f]*))?")
_DEVICE_PATH_RE = re.compile(r"/dev/(?:tpm|tpmrm)[0-9]+|/[A-Za-z0-9_./-]+")
_TABRMD_OPTION_RE = re.compile(r"bus_name=[A-Za-z0-9_.]+|bus_type=(?:system|session)")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def parse_tcti(text):
    """Split ``name[:conf]`` and validate it. Raises TpmAccessError(kind='tcti_invalid')."""
    if not isinstance(text, str) or not text.strip():
        raise TpmAccessError("tcti_invalid", "tcti is empty; use e.g. device:/dev/tpmrm0, tabrmd or swtpm:port=2321")
    m = _TCTI_RE.fullmatch(text)
    if not m or _CONTROL_RE.search(text):
        raise TpmAccessError(
            "tcti_invalid",
            f"tcti {text!r} is malformed: expected NAME[:CONFIG] such as device:/dev/tpmrm0, "
            "tabrmd:bus_type=system or swtpm:host=127.0.0.1,port=2321 (no spaces or control characters)",
        )
    name, conf = m.group("name"), m.group("conf") or ""
    if name.startswith("libtss2-tcti-"):
        name = name[len("libtss2-tcti-") :].split(".so")[0]
    if name == "device" and conf and not _DEVICE_PATH_RE.fullmatch(conf):
        raise TpmAccessError(
            "tcti_invalid", f"tcti {text!r}: the device TCTI needs an absolute path, e.g. device:/dev/tpmrm0"
        )
    if name == "tabrmd" and conf and not all(_TABRMD_OPTION_RE.fullmatch(item) for item in conf.split(",")):
        raise TpmAccessError(
            "tcti_invalid",
            f"tcti {text!r}: tabrmd options are bus_name=NAME and bus_type=system|session, separated by commas",
        )
    if name in ("swtpm", "mssim"):
        host_port(name, conf)  # validates
    return name, conf


def tcti_error(text, names=None):
    """Why ``text`` is not an acceptable TCTI string ('' when it is), optionally limited to TCTI ``names``."""
    try:
        name, _conf = parse_tcti(text)
    except TpmAccessError as exc:
        return exc.msg
    if names is not None and name not in names:
        return f"tcti {text!r}: use one of the TCTIs {', '.join(names)}"
    return ""


def host_port(name, conf):
    """(host, port) of a swtpm/mssim TCTI config (``host=H,port=P`` or the legacy ``tcp://H:P``)."""
    host, port = "localhost", 2321
    if conf.startswith("tcp://"):
        hp = conf[len("tcp://") :]
        host, _sep, p = hp.rpartition(":")
        conf_items = {"host": host or "localhost", "port": p}
    else:
        conf_items = {}
        for item in filter(None, conf.split(",")):
            key, sep, value = item.partition("=")
            if not sep or key not in ("host", "port"):
                raise TpmAccessError(
                    "tcti_invalid",
                    f"{name} TCTI config {conf!r} is malformed: expected host=HOST,port=PORT (got {item!r})",
                )
            conf_items[key] = value
    host = conf_items.get("host", host)
    try:
        port = int(conf_items.get("port", port))
        if not 0 < port < 65535:
            raise ValueError
    except ValueError:
        raise TpmAccessError("tcti_invalid", f"{name} TCTI config {conf!r}: port must be a number 1..65534") from None
    return host, port
