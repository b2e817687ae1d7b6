"""Verify the containers scenario: a real container on a lab VM reaches the TPM as templated, and only so."""

import json
import os
import time

import pytest
from tpmfleet_molecule import PROJECT, needs_inventory, recap, run_playbook

CONVERGE = os.path.join(PROJECT, "molecule", "containers", "converge.yml")
PROJECT_DIR = "/srv/tpmfleet/attest"
COMPOSE = f"{PROJECT_DIR}/compose.yaml"
CONTAINER = "attest-quoter-1"
SECRET = "not-a-real-secret"  # noqa: S105 -- a stand-in value in molecule.yml, not a credential
TCTI_NAMES = ("TCTI", "TSS2_TCTI", "TPM2TOOLS_TCTI", "TPM2_PKCS11_TCTI", "TPM2OPENSSL_TCTI")


def tss_gid(host):
    return int(host.check_output("getent group tss").split(":")[2])


def inspect(host):
    return json.loads(host.check_output(f"docker inspect {CONTAINER}"))[0]


def info_env(host):
    return inspect(host)["Config"]["Env"]


def logs(host):
    result = host.run(f"docker logs {CONTAINER}")
    return result.stdout + result.stderr


def wait_for_log(host, text, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = logs(host)
        if text in out:
            return out
        time.sleep(5)
    raise AssertionError(f"{text!r} not in the container's log after {timeout} s:\n{logs(host)}")


def sha(host, path):
    return host.check_output(f"sha256sum {path}").split()[0]


def projects(**overrides):
    """The scenario's project (molecule.yml) with overrides on its service."""
    service = {
        "name": "quoter",
        "image": "tpmfleet/tpm2-tools:lab",
        "user": "2000:2000",
        "command": ["/bin/sh", "/opt/tpmfleet/quote-twice.sh"],
        "environment": {"QUOTE_LABEL": "lab", "QUOTE_SECRET": SECRET, "QUOTE_LITERAL": "a$b ${c}"},
        "data": {"persistence": "/var/lib/quoter", "logs": "/var/log/quoter"},
        "restart": "no",
        "healthcheck": {
            "test": ["CMD", "/bin/test", "-e", "/tmp/quotes-ok"],
            "interval": "5s", "timeout": "5s", "retries": 60, "start_period": "5s",
        },
    }  # fmt: skip
    return [{"name": "attest", "services": [{**service, **overrides}]}]


def converge(host, *extra, mitogen=True):
    """The scenario's converge playbook with extra vars (JSON), on this host; the CompletedProcess."""
    args = [a for e in extra for a in ("-e", json.dumps(e))]
    return run_playbook(CONVERGE, *args, limit=host.backend.get_hostname(), mitogen=mitogen, timeout=1800)


# --- direct mode, as converged -------------------------------------------------------------


def test_the_container_did_two_quotes_over_tpm0_as_a_non_root_uid_with_the_templated_group(host):
    out = logs(host)
    assert f"uid=2000 gid=2000 groups=2000 {tss_gid(host)} tcti=device:/dev/tpm0" in out, out
    assert "quote 1 ok" in out and "quote 2 ok" in out and "TPMFLEET-QUOTES-OK" in out, out
    state = inspect(host)["State"]
    assert state["Running"] and state["Health"]["Status"] == "healthy"


def test_docker_runs_it_with_least_privilege_and_the_hosts_numeric_gid(host):
    info = inspect(host)
    hc = info["HostConfig"]
    assert info["Config"]["User"] == "2000:2000"
    assert hc["GroupAdd"] == [str(tss_gid(host))]
    assert hc["Devices"] == [{"PathOnHost": "/dev/tpm0", "PathInContainer": "/dev/tpm0", "CgroupPermissions": "rw"}]
    assert hc["Privileged"] is False and hc["CapDrop"] == ["ALL"] and not hc["CapAdd"]
    assert hc["SecurityOpt"] == ["no-new-privileges:true"]
    assert hc["ReadonlyRootfs"] is True and set(hc["Tmpfs"]) == {"/tmp", "/run"}
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (256 * 1024 * 1024, 10**9, 256)
    assert hc["RestartPolicy"]["Name"] == "no"
    assert not any("docker.sock" in m["Source"] for m in info["Mounts"])


def test_the_container_has_the_hosts_tcti_variables_and_its_env_literally(host):
    env = dict(line.split("=", 1) for line in info_env(host))
    host_env = dict(
        line.split("=", 1)
        for line in host.file("/etc/tpm2/tcti.env").content_string.splitlines()
        if line and not line.startswith("#")
    )
    assert {name: env[name] for name in TCTI_NAMES} == host_env
    assert env["QUOTE_SECRET"] == SECRET
    assert env["QUOTE_LITERAL"] == "a$b ${c}"


def test_files_and_data_directories_are_tight(host):
    compose = host.file(COMPOSE)
    assert (compose.user, compose.group, compose.mode) == ("root", "root", 0o640)
    assert compose.content_string.startswith("#\n# Ansible managed\n#\n")
    assert SECRET not in compose.content_string
    env = host.file(f"{PROJECT_DIR}/quoter.env")
    assert (env.user, env.mode) == ("root", 0o600) and f'QUOTE_SECRET="{SECRET}"' in env.content_string
    for kind in ("persistence", "logs"):
        d = host.file(f"{PROJECT_DIR}/data/quoter/{kind}")
        assert (d.uid, d.gid, d.mode) == (2000, 2000, 0o700)
    # Written by the container's user through the bind mounts.
    assert host.file(f"{PROJECT_DIR}/data/quoter/persistence/last-quotes").uid == 2000
    assert "quotes by uid 2000" in host.file(f"{PROJECT_DIR}/data/quoter/logs/quotes.log").content_string
    assert host.run(f"docker compose -f {COMPOSE} config --quiet").rc == 0


# --- kernel_rm: the same service over /dev/tpmrm0 -------------------------------------------


@needs_inventory
def test_zz1_kernel_rm_recreates_the_container_over_tpmrm0(host):
    before = sha(host, COMPOSE)
    start = time.monotonic()
    run = converge(host, {"tpm_quote_mode": "kernel_rm"})
    print(f"switch to kernel_rm: {time.monotonic() - start:.0f} s")
    assert run.returncode == 0, run.stdout[-4000:]
    assert sha(host, COMPOSE) != before
    backups = host.run(f"ls {COMPOSE}.*~").stdout.split()
    assert backups and any(sha(host, b) == before for b in backups), "no backup of the replaced compose file"
    out = wait_for_log(host, "TPMFLEET-QUOTES-OK")
    assert f"uid=2000 gid=2000 groups=2000 {tss_gid(host)} tcti=device:/dev/tpmrm0" in out, out
    assert "quote 1 ok" in out and "quote 2 ok" in out
    assert inspect(host)["HostConfig"]["Devices"][0]["PathOnHost"] == "/dev/tpmrm0"
    again = converge(host, {"tpm_quote_mode": "kernel_rm"})
    assert recap(again, host.backend.get_hostname())["changed"] == 0, again.stdout[-4000:]


@needs_inventory
def test_zz2_without_the_tss_gid_the_role_names_it_and_the_container_gets_eacces(host):
    gid = tss_gid(host)
    before = sha(host, COMPOSE)
    # fail (the default): refused before anything is written.
    run = converge(host, {"tpm_quote_mode": "kernel_rm", "tpm_containers_projects": projects(tss_group=False)})
    print(run.stdout[-3000:])
    assert run.returncode != 0
    assert f"GID {gid} (group tss) is missing from its group_add" in run.stdout, run.stdout[-3000:]
    assert "cannot open /dev/tpmrm0" in run.stdout and "Nothing was changed" in run.stdout
    assert sha(host, COMPOSE) == before
    # warn: deployed anyway; the container's first TPM operation is refused.
    run = converge(
        host,
        {"tpm_quote_mode": "kernel_rm", "tpm_containers_projects": projects(tss_group=False),
         "tpm_containers_access_check": "warn", "tpm_containers_wait": False},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    assert f"GID {gid} (group tss) is missing from its group_add" in run.stdout
    out = wait_for_log(host, "Permission denied")
    print(out)
    assert "uid=2000 gid=2000 groups=2000 tcti=device:/dev/tpmrm0" in out
    assert "Failed to open specified TCTI device file /dev/tpmrm0: Permission denied" in out
    assert "TPMFLEET-QUOTES-OK" not in out
    # Back to the templated group: the quotes work again.
    run = converge(host, {"tpm_quote_mode": "kernel_rm"})
    assert run.returncode == 0, run.stdout[-4000:]
    assert "quote 2 ok" in wait_for_log(host, "TPMFLEET-QUOTES-OK")


@needs_inventory
def test_zz3_a_file_the_engine_rejects_never_replaces_the_working_one(host):
    before = sha(host, COMPOSE)
    started = inspect(host)["State"]["StartedAt"]
    # Valid for the compose schema, refused by `docker compose config`.
    run = converge(host, {"tpm_quote_mode": "kernel_rm", "tpm_containers_projects": projects(ports=["99999:80"])})
    assert run.returncode != 0
    assert "Invalid hostPort: 99999" in run.stdout, run.stdout[-3000:]
    assert sha(host, COMPOSE) == before
    assert inspect(host)["State"]["StartedAt"] == started and inspect(host)["State"]["Running"]


@needs_inventory
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"tpm_containers_projects": projects(image=None)},
            "services[0].image (project attest, service quoter): an image reference is required",
        ),
        ({"tpm_containers_projects": projects(docker_socket=True)}, "Opt in with tpm_containers_allow_docker_socket"),
        ({"tpm_quote_mode": "fast"}, "tpm_quote_mode must be one of"),
        (
            {"tpm_containers_projects": [{"name": "attest", "services": projects()[0]["services"] * 2}]},
            "services[1] (project attest, service quoter): service name",
        ),
    ],
)
def test_zz4_bad_inputs_fail_clearly_and_change_nothing(host, extra, expected):
    before = (sha(host, COMPOSE), sha(host, f"{PROJECT_DIR}/quoter.env"), inspect(host)["State"]["StartedAt"])
    run = converge(host, {"tpm_quote_mode": "kernel_rm", **extra})
    assert run.returncode != 0
    assert expected in run.stdout, run.stdout[-3000:]
    assert (sha(host, COMPOSE), sha(host, f"{PROJECT_DIR}/quoter.env"), inspect(host)["State"]["StartedAt"]) == before


# --- abrmd: no device, the broker over the D-Bus system socket ------------------------------


@needs_inventory
def test_zz5_abrmd_gives_the_dbus_socket_and_the_container_quotes_through_the_broker(host):
    tcti = "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system"
    host.run("userdel quoter")
    before = sha(host, COMPOSE)
    # dbus-daemon closes the connection of a UID without an account on the host: named, nothing written.
    run = converge(host, {"tpm_quote_mode": "abrmd"})
    assert run.returncode != 0
    assert "the system D-Bus closes connections from UID 2000, which has no account on the host" in run.stdout, (
        run.stdout[-3000:]
    )
    assert sha(host, COMPOSE) == before
    # With the account (the fix the message gives), the container quotes twice through tpm2-abrmd.
    assert host.run("useradd --system --no-create-home --uid 2000 --shell /usr/sbin/nologin quoter").rc == 0
    run = converge(host, {"tpm_quote_mode": "abrmd"})
    assert run.returncode == 0, run.stdout[-4000:]
    assert host.service("tpm2-abrmd").is_running
    out = wait_for_log(host, "TPMFLEET-QUOTES-OK")
    assert f"uid=2000 gid=2000 groups=2000 {tss_gid(host)} tcti={tcti}" in out, out
    assert "quote 1 ok" in out and "quote 2 ok" in out
    info = inspect(host)
    assert not info["HostConfig"]["Devices"]
    sockets = [m for m in info["Mounts"] if m["Destination"] == "/run/dbus/system_bus_socket"]
    assert len(sockets) == 1 and sockets[0]["RW"] is False, info["Mounts"]
    again = converge(host, {"tpm_quote_mode": "abrmd"})
    assert recap(again, host.backend.get_hostname())["changed"] == 0, again.stdout[-4000:]
