#!/usr/bin/env bash
# Builds the Debian package and checks it: the files it installs, that its
# binaries run, and its systemd unit with `systemd-analyze verify` (where
# systemd is installed). Run from anywhere; it takes a release build, so it
# is not part of .ci/run. The package lands in target/debian/.
set -euo pipefail
cd "$(dirname "$0")/.."

deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $deb_version" ]; then
    CARGO_PROFILE_RELEASE_LTO=false cargo install --locked "cargo-deb@$deb_version"
fi
cargo deb -p curbside-server --locked
deb=$(ls -t target/debian/curbside_*.deb | head -n 1)
echo "built $deb"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$root/DEBIAN"
for file in usr/bin/curbside-server usr/bin/curbside etc/curbside/curbside.toml \
    usr/share/doc/curbside/README.md usr/share/doc/curbside/operations.md \
    usr/share/doc/curbside/copyright DEBIAN/postinst DEBIAN/postrm DEBIAN/conffiles; do
    if [ ! -e "$root/$file" ]; then
        echo "the package lacks $file" >&2
        exit 1
    fi
done
unit=$(find "$root" -name curbside.service -path '*systemd/system*' | head -n 1)
if [ -z "$unit" ]; then
    echo "the package lacks its systemd unit" >&2
    exit 1
fi
grep -qx '/etc/curbside/curbside.toml' "$root/DEBIAN/conffiles"
"$root/usr/bin/curbside-server" --version
"$root/usr/bin/curbside" --version
sh -n "$root/DEBIAN/postinst"
sh -n "$root/DEBIAN/postrm"
# The hardening the unit promises.
for directive in User=curbside ProtectSystem=strict NoNewPrivileges=true \
    StateDirectory=curbside ProtectHome=true PrivateTmp=true; do
    grep -qx "$directive" "$unit" || { echo "$unit lacks $directive" >&2; exit 1; }
done

if command -v systemd-analyze >/dev/null; then
    # The unit as installed, with its binary where this check unpacked it.
    checked="$root/curbside.service"
    sed "s#/usr/bin/curbside-server#$root/usr/bin/curbside-server#" "$unit" >"$checked"
    systemd-analyze verify "$checked"
    echo "systemd-analyze verify: the unit is accepted"
else
    echo "systemd-analyze is not installed: the unit was not verified" >&2
fi
echo "the package checks out: $deb"
