#!/usr/bin/env bash
# Installs the Debian packages the console and its test suite need, when they
# are missing. Idempotent and quiet when everything is already there.
#   scripts/system-deps.sh          everything the tests use
#   scripts/system-deps.sh python   only what creating the virtualenv needs
set -euo pipefail

missing=()
# Debian's own python3 ships venv and ensurepip separately.
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
if [[ ${1:-all} == python ]]; then
    :
else
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
# git: the Compose tests read a compose file's history from a real repository.
command -v git >/dev/null 2>&1 || missing+=(git)
# The real Prometheus the signal tests (and `drill --with-prometheus`) start themselves.
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# The real Alertmanager the autopilot tests (and `drill --with-alertmanager`) start by hand.
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
# The real PostgreSQL the database tests start (initdb + pg_ctl, on PATH or in
# Debian's /usr/lib/postgresql/N/bin) and the client tools the console runs.
if ! { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1 \
    && ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    missing+=(postgresql)
fi
command -v pg_restore >/dev/null 2>&1 || missing+=(postgresql-client)
# The real Docker world of the Compose tests (scripts/docker-up.sh): the
# engine, a registry to pull from, and a static busybox to build images from.
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
# The real browser of the web view's tests (playwright drives it by executable_path).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi

if ((${#missing[@]} == 0)); then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
else
    SUDO=
fi
echo "installing Debian packages: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
