#!/bin/sh
# The lab's stand-in TPM consumer, run in a container by molecule/containers:
# two consecutive quotes over the TCTI the compose file sets (TPM2TOOLS_TCTI),
# as the container's non-root user. No resource manager on /dev/tpm0 in direct
# mode: every tool leaves what it loaded in the TPM, so flush after each step.
set -eu
cd /tmp
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) tcti=${TPM2TOOLS_TCTI:-unset}"
flush() { tpm2_flushcontext -t; }
tpm2_createprimary -C o -G ecc256:aes128cfb -c p.ctx >/dev/null
flush
tpm2_create -C p.ctx -G ecc256:ecdsa-sha256:null \
  -a "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign" -u ak.pub -r ak.priv >/dev/null
flush
tpm2_load -C p.ctx -u ak.pub -r ak.priv -c ak.ctx >/dev/null
flush
for n in 1 2; do
  tpm2_quote -c ak.ctx -l sha256:0,1,2,3,4,5,6,7 -q "0${n}00112233" -m "q${n}.msg" -s "q${n}.sig" >/dev/null
  flush
  echo "quote ${n} ok"
done
date -u +%FT%TZ > /var/lib/quoter/last-quotes
echo "quotes by uid $(id -u)" >> /var/log/quoter/quotes.log
echo TPMFLEET-QUOTES-OK
: > /tmp/quotes-ok
trap 'exit 0' TERM
sleep infinity &
wait
