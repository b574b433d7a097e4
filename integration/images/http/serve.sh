#!/bin/sh
# The test workload: answers every GET / with this container's hostname (the pod's name),
# over IPv4 and IPv6 (busybox httpd binds [::]:PORT, dual-stack). PORT defaults to 8080.
set -eu
port="${PORT:-8080}"
mkdir -p /tmp/www
hostname > /tmp/www/index.html
echo "serving $(hostname) on port ${port}" >&2
exec httpd -f -v -p "${port}" -h /tmp/www
