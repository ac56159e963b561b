#!/usr/bin/env bash
# Stops what scripts/docker-up.sh DIR started (by the pids it recorded, never
# by name) and removes DIR. Safe to run twice or on a half-started world.
set -uo pipefail

DIR=${1:?usage: docker-down.sh DIR}
[[ -d "$DIR" ]] || exit 0
DIR=$(cd "$DIR" && pwd)
export DOCKER_HOST="unix://$DIR/docker.sock"
export DOCKER_CONFIG="$DIR/config"

# Containers first, so no shim outlives the daemon.
if [[ -S "$DIR/docker.sock" ]]; then
    ids=$(timeout 20 docker ps -aq 2>/dev/null)
    [[ -n "$ids" ]] && timeout 60 docker rm -f $ids >/dev/null 2>&1
fi

stop_group() {  # stop_group PIDFILE [LOG DONE-LINE]: TERM the leader, wait, then KILL its process group
    local pidfile=$1 log=${2:-} done_line=${3:-} pid
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        # dockerd logs its clean shutdown at once, then idles ~5 s retrying
        # its gone containerd: nothing is left to lose by not waiting for that.
        [[ -n "$log" ]] && grep -q "$done_line" "$log" 2>/dev/null && break
        sleep 0.1
    done
    # setsid made the leader's pid its process group id: whatever it left
    # behind (containerd, shims) is in that group and nothing else is.
    kill -KILL -- "-$pid" 2>/dev/null
    return 0
}
stop_group "$DIR/registry.pid"
stop_group "$DIR/dockerd.pid" "$DIR/dockerd.log" "Daemon shutdown complete"

# Anything the daemon mounted under DIR (netns, shm) must go before rm -rf.
grep -o " $DIR/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r mountpoint; do
    umount -l "$mountpoint" 2>/dev/null
done
rm -rf "$DIR"
