#!/usr/bin/env bash
# A throwaway sshd on 127.0.0.1 so the remote-engine path (ssh://) is tested
# through a real SSH server: key-only root login, host and client keys, config
# and pid file all under one directory, nothing in ~/.ssh or /etc/ssh touched.
# Idempotent: a second run reuses the keys and restarts nothing that answers.
#
# Usage: scripts/sshd-for-tests.sh [DIR] [PORT]
#   DIR  defaults to $HOME/.cache/slipway/sshd, PORT to 2222.
# Prints the export lines a caller needs (eval "$(scripts/sshd-for-tests.sh)").
# Stop it with: kill "$(cat DIR/sshd.pid)"
set -euo pipefail

dir=${1:-$HOME/.cache/slipway/sshd}
port=${2:-2222}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Packages only when missing: apt is slow and needs the network.
if ! command -v ssh >/dev/null || [ ! -x /usr/sbin/sshd ]; then
    echo "installing openssh-server/openssh-client" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        openssh-server openssh-client >&2
fi

[ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C slipway-test-host -f "$dir/host_ed25519"
[ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C slipway-test-client -f "$dir/client_ed25519"
cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
chmod 600 "$dir/host_ed25519" "$dir/client_ed25519" "$dir/authorized_keys"

cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM no
# The docker CLI's ssh transport and bollard's run one command per
# connection; the default of 10 unauthenticated starts is plenty, but a deploy
# opens many sessions over one master.
MaxSessions 64
LogLevel ERROR
EOF

cat >"$dir/ssh_config" <<EOF
Host slipway-test
    HostName 127.0.0.1
    Port $port
    User root
    IdentityFile $dir/client_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
    BatchMode yes
EOF

# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd

running=false
if [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
    running=true
fi
if ! $running; then
    /usr/sbin/sshd -t -f "$dir/sshd_config"
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
fi

# Poll (bounded) until a login runs docker; sshd forks before it listens.
deadline=$((SECONDS + 15))
until out=$(ssh -F "$dir/ssh_config" slipway-test docker version --format '{{.Server.Version}}' 2>&1); do
    if [ $SECONDS -ge $deadline ]; then
        echo "sshd on 127.0.0.1:$port does not accept the test key or cannot run docker: $out" >&2
        echo "see $dir/sshd.log" >&2
        exit 1
    fi
    sleep 0.2
done
echo "sshd on 127.0.0.1:$port: docker $out reachable as root@slipway-test" >&2

cat <<EOF
export SLIPWAY_TEST_SSHD_DIR=$dir
export SLIPWAY_TEST_SSH_CONFIG=$dir/ssh_config
export SLIPWAY_SSH_IDENTITY=$dir/client_ed25519
# ssh -F $dir/ssh_config slipway-test docker version
EOF
