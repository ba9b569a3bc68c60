#!/bin/bash
# The image's HEALTHCHECK: GET /healthz on the API listener over loopback,
# with bash's /dev/tcp (the image has no curl). The port is the one of
# SLUICE_LISTEN__API (the image sets 0.0.0.0:7800), default 7800.
port=${SLUICE_LISTEN__API##*:}
port=${port:-7800}

exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
IFS= read -r -t 5 status <&3 || { echo "GET /healthz on port $port: no answer" >&2; exit 1; }
case $status in
    "HTTP/1."[01]" 200 "*) exit 0 ;;
esac
echo "GET /healthz on port $port: ${status%$'\r'}" >&2
exit 1
