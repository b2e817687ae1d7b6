#!/usr/bin/env python3
"""Quote latency on one swtpm: in-process tpm2-pytss vs the tpm2_quote CLI, and the Ansible task
time of ``tpm_quote`` vs a ``command: tpm2_quote`` task.

Usage (from the repo root): .venv/bin/python benchmarks/quote_bench.py [--iterations 50] [--task-runs 5]

Starts its own swtpm on free ports in a temp dir, prints a table, writes nothing into the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "unit"))
# the test suite's swtpm helper; importing it also makes ansible.module_utils.tpmfleet_* importable
from conftest import Swtpm

SEL_TEXT = "sha256:0,1,2,3,4,5,6,7"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def stats(samples):
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95, len(samples)


def bench_pytss(tcti, n):
    """Per quote: PCR read + TPM2_Quote with an already loaded AK (what the module does per nonce)."""
    from ansible_collections.tpmfleet.tpm.plugins.module_utils import quote_verify as qv
    from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import open_esapi
    from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import create_ak, read_pcrs
    from tpm2_pytss.constants import TPM2_ALG
    from tpm2_pytss.types import TPML_PCR_SELECTION, TPMT_SIG_SCHEME

    sel = qv.parse_pcr_selection(SEL_TEXT)
    ectx = open_esapi(tcti)
    ak, _pub = create_ak(ectx, "ecc", {})
    samples = []
    try:
        tpml = TPML_PCR_SELECTION.parse(SEL_TEXT)
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)
        for _ in range(n):
            t0 = time.perf_counter()
            read_pcrs(ectx, sel)
            ectx.quote(ak, tpml, os.urandom(20), scheme)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        ectx.flush_context(ak)
        ectx.close()
    return samples


def bench_cli(tcti, n, work):
    """Wall time of one ``tpm2_quote`` process with a loaded AK context (tpm2_quote reads PCRs itself)."""
    run = lambda *a: subprocess.run(a, cwd=work, check=True, capture_output=True)  # noqa: E731
    run("tpm2_createprimary", "-T", tcti, "-C", "o", "-c", "p.ctx")
    run("tpm2_flushcontext", "-T", tcti, "-t")
    run("tpm2_create", "-T", tcti, "-C", "p.ctx", "-G", "ecc256:ecdsa-sha256:null", "-u", "ak.pub", "-r", "ak.priv",
        "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda")  # fmt: skip
    run("tpm2_flushcontext", "-T", tcti, "-t")
    run("tpm2_load", "-T", tcti, "-C", "p.ctx", "-u", "ak.pub", "-r", "ak.priv", "-c", "ak.ctx")
    run("tpm2_flushcontext", "-T", tcti, "-t")
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        run("tpm2_quote", "-T", tcti, "-c", "ak.ctx", "-l", SEL_TEXT, "-q", os.urandom(20).hex(),
            "-m", "m", "-s", "s", "-o", "o", "-g", "sha256")  # fmt: skip
        samples.append((time.perf_counter() - t0) * 1000)
        run("tpm2_flushcontext", "-T", tcti, "-t")  # not timed: the quote's leaked AK copy
    return samples


def bench_task(tcti, runs, work, task):
    play = Path(work) / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n" + textwrap.indent(task, "    ") + "\n")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.null",
        ANSIBLE_LOCALHOST_WARNING="0",
    )
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e",
           f"ansible_python_interpreter={sys.executable}", str(play)]  # fmt: skip
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        samples.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"playbook failed:\n{proc.stdout}\n{proc.stderr}")
    return samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=50, help="quotes per in-process/CLI series")
    ap.add_argument("--task-runs", type=int, default=5, help="ansible-playbook runs per task variant")
    args = ap.parse_args()
    if not shutil.which("swtpm") or not shutil.which("tpm2_quote"):
        raise SystemExit("needs swtpm and tpm2-tools")
    with tempfile.TemporaryDirectory(prefix="tpmfleet-bench-") as work:
        tpm = Swtpm(Path(work) / "state")
        (Path(work) / "state").mkdir()
        tpm.start()
        try:
            tcti = tpm.tcti
            rows = [
                ("pytss in-process: PCR read + quote", bench_pytss(tcti, args.iterations)),
                ("tpm2_quote CLI process (wall)", bench_cli(tcti, args.iterations, work)),
                ("ansible-playbook: tpm_quote count=1 (pytss, verified)",
                 bench_task(tcti, args.task_runs, work, f"- tpm_quote: {{tcti: {json.dumps(tcti)}, count: 1}}")),
                ("ansible-playbook: tpm_quote count=1 method=cli (verified)",
                 bench_task(tcti, args.task_runs, work,
                            f"- tpm_quote: {{tcti: {json.dumps(tcti)}, count: 1, method: cli}}")),
                ("ansible-playbook: command tpm2_quote (unverified)",
                 bench_task(tcti, args.task_runs, work,
                            "- ansible.builtin.command: "
                            + json.dumps(f"tpm2_quote -T {tcti} -c {work}/ak.ctx -l {SEL_TEXT} -q 0011223344 "
                                         f"-m {work}/m -s {work}/s -g sha256")
                            + "\n- ansible.builtin.command: " + json.dumps(f"tpm2_flushcontext -T {tcti} -t"))),
                ("ansible-playbook: empty play (baseline)",
                 bench_task(tcti, args.task_runs, work, "- ansible.builtin.meta: noop")),
            ]  # fmt: skip
        finally:
            tpm.stop()
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement'.ljust(width)}  {'median ms':>10}  {'p95 ms':>10}  {'n':>4}")
    for name, samples in rows:
        med, p95, n = stats(samples)
        print(f"{name.ljust(width)}  {med:10.2f}  {p95:10.2f}  {n:4d}")
    print(f"(swtpm 2.0 over TCP; python {sys.version.split()[0]}; ansible-playbook wall time includes startup)")


if __name__ == "__main__":
    main()
