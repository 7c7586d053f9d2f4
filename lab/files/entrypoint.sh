#!/bin/bash
# opsbook lab container entrypoint (runs under docker-init/tini as PID 1).
#
# Every start (first start and every `docker start` after a kill) it:
#   - generates the ssh host keys if missing (so they survive restarts),
#   - installs the lab's public key for root and for the sudo user `ops`,
#   - writes the role's service configuration (web / lb / db_primary / db_standby),
#   - starts sshd and the role's services through their /etc/init.d scripts,
#     so that `service NAME start|stop|restart|status` works over ssh,
# then sleeps forever; the services are daemons, not children of this script.
set -u
LAB=/opt/opsbook-lab
ROLE=${LAB_ROLE:-none}
NAME=${LAB_NAME:-$(hostname)}
log() { echo "lab-entrypoint[$NAME]: $*"; }

# --- network: the lab subnet only ----------------------------------------------
# No default route: a lab host reaches the other lab hosts (and the host's
# docker-proxy reaches it) on the lab subnet, and nothing else, whatever the
# machine's forwarding settings are.
ip route del default 2>/dev/null || true

# --- users and keys --------------------------------------------------------
ssh-keygen -A >/dev/null
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
printf '%s\n' "${LAB_PUBKEY:?LAB_PUBKEY missing}" >/root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys

if ! id ops >/dev/null 2>&1; then
  useradd -m -s /bin/bash -G sudo ops
fi
if [ -n "${LAB_SUDO_PASSWORD:-}" ]; then
  echo "ops:${LAB_SUDO_PASSWORD}" | chpasswd
fi
install -d -m 700 -o ops -g ops /home/ops/.ssh
printf '%s\n' "$LAB_PUBKEY" >/home/ops/.ssh/authorized_keys
chown ops:ops /home/ops/.ssh/authorized_keys
chmod 600 /home/ops/.ssh/authorized_keys
# `ops` may sudo, with its password (the sudo group rule of /etc/sudoers).
rm -f /etc/sudoers.d/ops-nopasswd

install -m 644 "$LAB/sshd_config" /etc/ssh/sshd_config.d/opsbook-lab.conf

# --- helpers available on every host -----------------------------------------
install -m 755 "$LAB/lb-backend" /usr/local/bin/lb-backend
echo "$ROLE" >/etc/opsbook-lab-role

# --- role configuration -------------------------------------------------------
case "$ROLE" in
  web)
    mkdir -p /var/www/lab
    sed "s/@NAME@/$NAME/g" "$LAB/index.html" >/var/www/lab/index.html
    echo "$NAME" >/var/www/lab/hostname.txt
    install -m 644 "$LAB/nginx-web.conf" /etc/nginx/sites-available/opsbook-lab
    sed -i "s/@NAME@/$NAME/g" /etc/nginx/sites-available/opsbook-lab
    ln -sf /etc/nginx/sites-available/opsbook-lab /etc/nginx/sites-enabled/opsbook-lab
    rm -f /etc/nginx/sites-enabled/default
    SERVICES="nginx"
    ;;
  lb)
    # First start only: later starts keep what runbooks changed (drained
    # backends are runtime state; a rewritten haproxy.cfg is configuration).
    if [ ! -e /etc/haproxy/.opsbook-lab ]; then
      {
        cat "$LAB/haproxy.cfg"
        for b in ${LAB_WEB_BACKENDS:-}; do        # name:address:port
          IFS=: read -r bn ba bp <<<"$b"
          echo "    server $bn $ba:$bp check inter 1s fall 2 rise 2"
        done
      } >/etc/haproxy/haproxy.cfg
      touch /etc/haproxy/.opsbook-lab
    fi
    SERVICES="haproxy"
    ;;
  db_primary|db_standby)
    conf=/etc/redis/redis.conf
    if [ ! -e /etc/redis/.opsbook-lab ]; then
      sed -i -e 's/^bind .*/bind 0.0.0.0/' -e 's/^protected-mode .*/protected-mode no/' \
             -e 's/^# *replica-announce-ip .*//' "$conf"
      grep -q '^daemonize yes' "$conf" || sed -i 's/^daemonize .*/daemonize yes/' "$conf"
      # Notice a lost primary/replica within seconds, not the default minute.
      printf 'repl-ping-replica-period 1\nrepl-timeout 5\n' >>"$conf"
      if [ "$ROLE" = db_standby ] && [ -n "${LAB_REDIS_PRIMARY:-}" ]; then
        echo "replicaof ${LAB_REDIS_PRIMARY} 6379" >>"$conf"
      fi
      touch /etc/redis/.opsbook-lab
    fi
    SERVICES="redis-server"
    ;;
  *) SERVICES="" ;;
esac

# --- start ------------------------------------------------------------------
service ssh start || log "sshd failed to start"
for s in $SERVICES; do
  service "$s" start || log "$s failed to start"
done
log "ready (role=$ROLE)"
touch /run/opsbook-lab-ready
exec sleep infinity
