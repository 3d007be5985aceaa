#!/usr/bin/env bash
# Checks that the runtime stage of deploy/docker/{coordinator,probe}.Dockerfile
# installs enough for the binary to start. No container engine is needed.
#
#   check-runtime-packages.sh COMPONENT BINARY [--rootfs DIR]
#
# 1. Every shared library BINARY links (ldd, on this Debian 12 machine) is
#    owned by a package in COMPONENT.packages or in that list's dependency
#    closure (apt-cache depends --recurse), or by an essential package of a
#    bookworm root.
# 2. With --rootfs DIR (a bookworm root made by `debootstrap --variant=minbase
#    bookworm DIR`, run as root): installs COMPONENT.packages into it with
#    apt-get inside a chroot, exactly as the Dockerfile does, copies BINARY in,
#    and checks inside the chroot that ldd finds every library and that the
#    binary runs (`--version`) as the unprivileged user 10001.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
component=${1:?component: coordinator or probe}
binary=${2:?the built binary}
rootfs=
[ "${3:-}" = --rootfs ] && rootfs=${4:?--rootfs DIR}
list=$here/$component.packages
[ -f "$list" ] || { echo "check-runtime-packages.sh: $list not found" >&2; exit 1; }
packages=$(sed 's/#.*//' "$list" | xargs)

owner_of() {  # the package owning a library path (Debian 12 merges /lib into /usr/lib)
  local lib=$1 p
  for path in "$lib" "$(readlink -f "$lib")" "/usr$lib" "${lib#/usr}"; do
    p=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$p" ] && { echo "$p"; return; }
  done
  echo "?$lib"
}

closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances $packages 2>/dev/null | grep -v '^ ' | sed 's/[<>]//g' | sort -u)
essential=$(dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" {print $1}')
status=0
checked=0
for lib in $(ldd "$binary" | awk '/=>/ {print $3}'); do
  pkg=$(owner_of "$lib")
  checked=$((checked + 1))
  if ! grep -qxF "${pkg%%:*}" <<<"$closure"$'\n'"$essential"; then
    echo "check-runtime-packages.sh: $lib (package $pkg) is not provided by $component.packages" >&2
    status=1
  fi
done
if ldd "$binary" | grep -q "not found"; then
  echo "check-runtime-packages.sh: $binary has unresolved libraries on this machine" >&2
  status=1
fi
echo "$component: $checked libraries linked, each provided by $component.packages or their dependencies: $([ $status = 0 ] && echo yes || echo NO)"

if [ -n "$rootfs" ]; then
  [ "$(id -u)" = 0 ] || { echo "check-runtime-packages.sh: --rootfs needs root (chroot)" >&2; exit 1; }
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  chroot "$rootfs" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null"
  name=$(basename "$binary")
  install -m 0755 "$binary" "$rootfs/usr/local/bin/$name"
  if chroot "$rootfs" ldd "/usr/local/bin/$name" | grep "not found"; then
    echo "check-runtime-packages.sh: in the $component root, $name has unresolved libraries (above)" >&2
    status=1
  fi
  if out=$(chroot --userspec=10001:10001 "$rootfs" "/usr/local/bin/$name" --version 2>&1); then
    echo "$component: in a bookworm root with only $component.packages installed, '$name --version' as uid 10001: $out"
  else
    echo "check-runtime-packages.sh: in the $component root, $name --version failed: $out" >&2
    status=1
  fi
fi
exit $status
