#!/usr/bin/env bash
# Builds the dsdnd Debian package and tests it on this machine (issue 15 §2): installs it
# with dpkg, checks the installed binaries, man pages, completions, conffile, system user and
# systemd unit (`systemd-analyze verify`), starts the installed dsdnd as the user dsdn with
# the installed /etc/dsdn/seeds.toml and reads dsdn_build_info from its /metrics, then removes
# and purges the package and checks that everything is gone. Exits non-zero on any failed check.
#
# Needs root and Debian (dpkg, apt-get to install missing tools). The package is built by
# scripts/package.sh (cargo-deb, installed when missing; the dev-profile binaries the tests
# built unless DSDN_DEB_PROFILE=release) and left in target/dsdn-deb/.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${DSDN_DEB_PROFILE:-dev}"
PKG=dsdnd
start_all=$SECONDS

fail() { echo "package-test: FAILED: $*" >&2; exit 1; }
step() { echo "package-test: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i, a system user)"
command -v dpkg >/dev/null || fail "needs dpkg (Debian or Ubuntu)"
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'installed'; then
  fail "the package $PKG is installed on this machine already; this test would remove it"
fi

# Tools: man-db (man), systemd (systemd-analyze), dpkg-dev (dpkg-shlibdeps, for cargo-deb's
# $auto dependencies), binutils (strip).
missing=()
command -v man >/dev/null || missing+=(man-db)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v strip >/dev/null || missing+=(binutils)
command -v curl >/dev/null || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

t=$SECONDS
deb=$(bash scripts/package.sh | tail -n 1)
[ -f "$deb" ] || fail "scripts/package.sh made no package"
step "package built in $((SECONDS - t)) s"

installed=0
run_dir=$(mktemp -d)
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ "$installed" = 1 ] && dpkg --purge "$PKG" >/dev/null 2>&1 || true
  rm -rf "$run_dir"
}
trap cleanup EXIT

t=$SECONDS
dpkg -i "$deb" || fail "dpkg -i $deb"
installed=1

# --version: the version, the commit this tree is at, the profile.
version=$(dpkg-query -W -f='${Version}' "$PKG")
commit=$(git rev-parse --short=9 HEAD 2>/dev/null || echo unknown)
case "$PROFILE" in dev) profile=debug ;; *) profile=$PROFILE ;; esac
for bin in dsdnd dsdn-agent; do
  [ "$(command -v "$bin")" = "/usr/bin/$bin" ] || fail "$bin is not /usr/bin/$bin"
  want="$bin ${version%-*} (git $commit, $profile)"
  got=$("/usr/bin/$bin" --version) || fail "$bin --version failed"
  [ "$got" = "$want" ] || fail "$bin --version: '$got', expected '$want'"
  step "$got"
done

# Man pages (gzipped by cargo-deb), readable through man; completions for three shells.
for page in dsdnd dsdn-agent dsdn-agent-peers-list dsdnd-init; do
  [ -f "/usr/share/man/man1/$page.1.gz" ] || fail "no /usr/share/man/man1/$page.1.gz"
done
man_text=$(LC_ALL=C MANWIDTH=80 man -P cat dsdnd 2>&1) || fail "man dsdnd failed: $man_text"
grep -q -- '--data-dir' <<<"$man_text" || fail "man dsdnd does not describe --data-dir: $man_text"
man_text=$(LC_ALL=C MANWIDTH=80 man -P cat dsdn-agent 2>&1) || fail "man dsdn-agent failed: $man_text"
grep -q 'dsdn-agent-peers' <<<"$man_text" || fail "man dsdn-agent does not name dsdn-agent-peers: $man_text"
for f in /usr/share/bash-completion/completions/{dsdnd,dsdn-agent} \
  /usr/share/zsh/vendor-completions/{_dsdnd,_dsdn-agent} \
  /usr/share/fish/vendor_completions.d/{dsdnd,dsdn-agent}.fish; do
  [ -s "$f" ] || fail "no completion file $f"
done
bash -c 'source /usr/share/bash-completion/completions/dsdn-agent && complete -p dsdn-agent' >/dev/null ||
  fail "the bash completion of dsdn-agent does not load"

# The conffile, the user, the unit.
dpkg-query -W -f='${Conffiles}' "$PKG" | grep -q '/etc/dsdn/seeds.toml' || fail "/etc/dsdn/seeds.toml is no conffile"
cmp -s /etc/dsdn/seeds.toml seeds.toml || fail "/etc/dsdn/seeds.toml differs from seeds.toml"
getent passwd dsdn | grep -q ':/var/lib/dsdn:/usr/sbin/nologin$' || fail "no system user dsdn (home /var/lib/dsdn, no shell)"
uid=$(id -u dsdn)
[ "$uid" -lt 1000 ] || fail "dsdn has uid $uid: not a system user"
unit=/usr/lib/systemd/system/dsdnd.service
[ -f "$unit" ] || fail "no $unit"
[ ! -e /etc/systemd/system/multi-user.target.wants/dsdnd.service ] || fail "the package enabled the service"
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $verify"
if grep -i 'dsdnd' <<<"$verify"; then
  fail "systemd-analyze verify warns about the unit"
fi
step "systemd-analyze verify accepts $unit"

# The installed daemon runs as dsdn with the installed configuration and the unit's flags,
# on loopback, and exports dsdn_build_info.
chmod 755 "$run_dir"
install -d -o dsdn -g dsdn -m 0750 "$run_dir/data"
api_port=$((20000 + RANDOM % 20000))
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
read -r -a argv <<<"$exec_start"
argv=("${argv[@]/\/var\/lib\/dsdn/$run_dir/data}")
setpriv --reuid=dsdn --regid=dsdn --init-groups -- "${argv[@]}" --listen "127.0.0.1:0" --api "127.0.0.1:$api_port" \
  >"$run_dir/log" 2>&1 &
daemon_pid=$!
metrics=
for _ in $(seq 1 100); do
  if [ -s "$run_dir/data/.cookie" ]; then
    metrics=$(curl -sf -H "Authorization: Bearer $(cat "$run_dir/data/.cookie")" \
      "http://127.0.0.1:$api_port/metrics") && break
  fi
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.2
done
[ -n "$metrics" ] || { cat "$run_dir/log" >&2; fail "the installed dsdnd did not serve /metrics"; }
want="dsdn_build_info{commit=\"$commit\",profile=\"$profile\",version=\"${version%-*}\"} 1"
grep -qF "$want" <<<"$metrics" || fail "no '$want' in /metrics"
step "the installed dsdnd runs as dsdn and exports $want"
kill "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=

# Remove keeps the conffile and the user; purge removes them too.
dpkg -r "$PKG" >/dev/null || fail "dpkg -r"
for f in /usr/bin/dsdnd /usr/bin/dsdn-agent "$unit" /usr/share/man/man1/dsdnd.1.gz \
  /usr/share/bash-completion/completions/dsdnd; do
  [ ! -e "$f" ] || fail "$f is left after dpkg -r"
done
[ -f /etc/dsdn/seeds.toml ] || fail "dpkg -r removed the conffile"
getent passwd dsdn >/dev/null || fail "dpkg -r removed the user dsdn"
dpkg --purge "$PKG" >/dev/null || fail "dpkg --purge"
installed=0
for f in /etc/dsdn /var/lib/dsdn /etc/systemd/system/dsdnd.service; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f is left after dpkg --purge"
done
! getent passwd dsdn >/dev/null || fail "the user dsdn is left after dpkg --purge"
! getent group dsdn >/dev/null || fail "the group dsdn is left after dpkg --purge"
! dpkg-query -W "$PKG" >/dev/null 2>&1 || fail "dpkg still knows $PKG after --purge"
step "installed, checked, removed and purged in $((SECONDS - t)) s"
step "passed in $((SECONDS - start_all)) s"
