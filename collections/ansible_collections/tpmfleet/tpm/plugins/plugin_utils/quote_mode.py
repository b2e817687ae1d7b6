# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The quote mode and everything it implies: the single source of truth (controller side).

Every role and template takes what a quote mode means (which device consumers
open, the TCTI string, whether tpm2-abrmd runs, what a container is given,
who may open which node) from ``profile()``, published by the
``tpmfleet.tpm.quote_mode`` filter; nothing else maps modes to settings.
"""

from __future__ import annotations

import json

from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti_grammar import tcti_error

# Every variable name that TPM software reads its TCTI from.
TCTI_VARIABLES = ("TCTI", "TSS2_TCTI", "TPM2TOOLS_TCTI", "TPM2_PKCS11_TCTI", "TPM2OPENSSL_TCTI")

ABRMD_TCTI = "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system"
DBUS_SYSTEM_SOCKET = "/run/dbus/system_bus_socket"
ABRMD_UNIT = "tpm2-abrmd.service"

# device: what consumers open. raw_node_group: who besides the owner (the tss
# user, which tpm2-abrmd runs as) may open /dev/tpmN — "tss" only where a
# consumer needs the raw device. abrmd: running / stopped and masked.
QUOTE_MODES = {
    "direct": {
        "description": "consumers open /dev/tpm0 themselves; tpm2-abrmd stopped and masked",
        "device": "/dev/tpm0",
        "tcti": "device:/dev/tpm0",
        "exclusive_device": "/dev/tpm0",
        "raw_node_consumer_access": True,
        "abrmd_running": False,
        "abrmd_masked": True,
        "container_devices": ["/dev/tpm0"],
        "container_dbus": False,
    },
    "kernel_rm": {
        "description": "consumers use the kernel resource manager /dev/tpmrm0; tpm2-abrmd stopped",
        "device": "/dev/tpmrm0",
        "tcti": "device:/dev/tpmrm0",
        "exclusive_device": None,
        "raw_node_consumer_access": False,
        "abrmd_running": False,
        "abrmd_masked": False,
        "container_devices": ["/dev/tpmrm0"],
        "container_dbus": False,
    },
    "abrmd": {
        "description": "consumers use the tpm2-abrmd broker on the system D-Bus; it holds /dev/tpm0",
        "device": None,
        "tcti": ABRMD_TCTI,
        "exclusive_device": None,
        "raw_node_consumer_access": False,
        "abrmd_running": True,
        "abrmd_masked": False,
        "container_devices": [],
        "container_dbus": True,
    },
}


def _shown(value):
    """A value as a message shows it: JSON, so that "", null and " direct" are visible."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def profile(mode, tss_user="tss", tss_group="tss", abrmd_tcti="device:/dev/tpm0", mask_abrmd=None):
    """The profile of a quote mode: every setting the mode implies.

    ``mask_abrmd`` overrides whether tpm2-abrmd is masked where the mode
    stops it (always masked in direct mode: nothing may hold /dev/tpm0).
    """
    if mode not in QUOTE_MODES:
        raise ValueError(
            f"tpm_quote_mode must be one of {', '.join(QUOTE_MODES)} (got {_shown(mode)}). "
            "Set it per host (host_vars, or -e tpm_quote_mode=kernel_rm)."
        )
    error = tcti_error(abrmd_tcti, names=("device",))
    if error:
        raise ValueError(
            f"tpm_quote_mode_abrmd_tcti must be a device TCTI for tpm2-abrmd, e.g. device:/dev/tpm0 "
            f"(got {_shown(abrmd_tcti)}: {error})."
        )
    spec = QUOTE_MODES[mode]
    masked = spec["abrmd_masked"]
    if mask_abrmd is not None and not spec["abrmd_running"] and mode != "direct":
        masked = bool(mask_abrmd)
    raw_group = tss_group if spec["raw_node_consumer_access"] else "root"
    return {
        "mode": mode,
        "description": spec["description"],
        "device": spec["device"],
        "tcti": spec["tcti"],
        "tcti_variables": {name: spec["tcti"] for name in TCTI_VARIABLES},
        "exclusive_device": spec["exclusive_device"],
        "abrmd": {
            "running": spec["abrmd_running"],
            "enabled": spec["abrmd_running"],
            "masked": masked,
            "tcti": abrmd_tcti,
        },
        "udev": [
            {"kernel": "tpm[0-9]*", "owner": tss_user, "group": raw_group, "mode": "0660"},
            {"kernel": "tpmrm[0-9]*", "owner": tss_user, "group": tss_group, "mode": "0660"},
        ],
        "nodes": {
            "/dev/tpm0": {"owner": tss_user, "group": raw_group, "mode": "0660"},
            "/dev/tpmrm0": {"owner": tss_user, "group": tss_group, "mode": "0660"},
        },
        # What a consumer service's drop-in adds: ordered after the TPM (the
        # device node it opens, tpm2.target where systemd has it) or after the
        # broker; without a resource manager, a flush of what it left loaded.
        "consumer": {
            "device_unit": device_unit(spec["device"]),
            "broker_unit": ABRMD_UNIT if spec["abrmd_running"] else None,
            "flush_orphans": spec["exclusive_device"] is not None,
        },
        "container": {
            "devices": list(spec["container_devices"]),
            "dbus_socket": DBUS_SYSTEM_SOCKET if spec["container_dbus"] else None,
            "tcti": spec["tcti"],
        },
    }


def device_unit(node):
    """systemd's device unit of a device node (/dev/tpmrm0 -> dev-tpmrm0.device), or None."""
    if not node:
        return None
    return node.strip("/").replace("-", "\\x2d").replace("/", "-") + ".device"


def modes():
    """The names of the quote modes."""
    return list(QUOTE_MODES)
