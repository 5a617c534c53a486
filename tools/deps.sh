#!/bin/sh
# Installs the Debian packages named as arguments that are not installed yet.
# Quiet when everything is present; needs root (or sudo) only when something is missing.
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "engram: installing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "engram: missing packages:$missing (run as root or install them with apt-get)" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq $missing >/dev/null 2>&1 || {
  $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq $missing >/dev/null || {
    echo "engram: could not install:$missing" >&2; exit 1; }
}
