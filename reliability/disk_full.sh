#!/usr/bin/env bash
# A real full disk (ENOSPC), not a simulated one: sluice's data directory on
# a small tmpfs, filled by a ballast file until less than store.min_free_bytes
# is free; uploads must then be refused with 507 naming the cause, /readyz
# must say why, and once the ballast is removed the same upload must go
# through with every participant acknowledged before still there.
#
#   sudo reliability/disk_full.sh [SLUICE_BIN]
#
# Needs root (to mount the tmpfs), curl and jq. Run by hand; its figures go
# in RELIABILITY.md.
set -euo pipefail

BIN=${1:-target/release/sluice}
SIZE_MB=${SIZE_MB:-256}
RESERVE=$((64 << 20))
API=127.0.0.1:17811
work=$(mktemp -d)
mnt=$work/disk
mkdir -p "$mnt"
mount -t tmpfs -o size=${SIZE_MB}m tmpfs "$mnt"
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    umount "$mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/sluice.toml" <<TOML
[listen]
api = "$API"
tracking = "127.0.0.1:0"
bounce = "127.0.0.1:0"
[store]
path = "$mnt/data"
min_free_bytes = $RESERVE
TOML
"$BIN" serve --config "$work/sluice.toml" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://$API/healthz" >/dev/null && break; sleep 0.1; done

status() { curl -s -o "$work/answer" -w '%{http_code}' "$@"; }
upload() { # $1: first customer number, $2: how many
    seq "$1" $(($1 + $2 - 1)) | awk '{printf "{\"customer\":\"c%d\",\"address\":\"c%d@example.org\"}\n", $1, $1}' >"$work/batch"
    status -X POST -H 'content-type: application/x-ndjson' --data-binary @"$work/batch" \
        "http://$API/v1/campaigns/full/participants"
}
free_bytes() { df -B1 --output=avail "$mnt" | tail -1 | tr -d ' '; }

[ "$(status -X PUT -H 'content-type: application/json' -d '{"channel":"email","name":"disk full"}' \
    "http://$API/v1/campaigns/full")" = 200 ] || { cat "$work/answer"; exit 1; }
[ "$(upload 1 10000)" = 200 ] || { cat "$work/answer"; exit 1; }
echo "10000 participants acknowledged; $(free_bytes) bytes free"

# Leave 16 MiB above the reserve, then upload until refused.
fallocate -l $(($(free_bytes) - RESERVE - (16 << 20))) "$mnt/ballast"
acked=10000
next=10001
while :; do
    code=$(upload "$next" 10000)
    if [ "$code" != 200 ]; then break; fi
    acked=$((acked + $(jq .accepted "$work/answer")))
    next=$((next + 10000))
done
echo "refused with $code after $acked acknowledged; $(free_bytes) bytes free:"
jq -r .detail "$work/answer"
[ "$code" = 507 ] || exit 1
echo "/readyz: $(curl -s "http://$API/readyz")"
echo "counts while full: $(curl -s "http://$API/v1/campaigns/full" | jq -c .counts)"
# All or nothing: the refused upload left none of its participants.
while_full=$(curl -s "http://$API/v1/campaigns/full" | jq .participants)
echo "participants while full: $while_full (acknowledged: $acked)"
[ "$while_full" = "$acked" ] || exit 1

rm "$mnt/ballast"
echo "ballast removed; $(free_bytes) bytes free"
code=$(upload "$next" 10000)
echo "the refused upload again: $code $(jq -c '{accepted, duplicates}' "$work/answer")"
[ "$code" = 200 ] || exit 1
acked=$((acked + $(jq .accepted "$work/answer")))
sent=$((next + 9999))
stored=$(curl -s "http://$API/v1/campaigns/full" | jq .participants)
# Every customer sent was acknowledged in the end, the retry's all new.
echo "customers sent $sent, stored $stored, new in the answers $acked"
[ "$stored" = "$sent" ] || exit 1
# The dispatcher looks at the disk every 100 ms.
for _ in $(seq 50); do grep -q "sending resumed" "$work/log" && break; sleep 0.1; done
grep -E "sending (paused|resumed)" "$work/log" | sed 's/^/log: /'
grep -q "sending resumed" "$work/log" || exit 1
