#!/bin/sh
# The image's entrypoint. `serve` needs SLUICE_TRACKING__BASE_URL: in a
# container the tracking listener is public (0.0.0.0:7801) and the default
# base URL, http://127.0.0.1:7801, would put links in every message that no
# recipient can follow. Any other command (check-config, bounce classify,
# --help, --version) goes to sluice as it is.
set -eu

if [ "${1-}" = serve ] && [ -z "${SLUICE_TRACKING__BASE_URL-}" ]; then
    echo "sluice: SLUICE_TRACKING__BASE_URL is not set: set it to the public URL where recipients reach this container's port 7801 (tracked links, the open pixel and unsubscribe links point there), e.g. -e SLUICE_TRACKING__BASE_URL=https://t.example.com" >&2
    exit 1
fi

exec /usr/local/bin/sluice "$@"
