# Shared by scripts/*: installs what the project needs when it is missing.
# Usage: . scripts/lib.sh; need_packages redis-server redis-tools libclang-dev

# apt-get as root, or through sudo when there is one.
_apt() {
  if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi
}

# need_packages PKG...: installs the Debian packages that are not installed yet.
need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  _apt update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive _apt install -y -qq "${missing[@]}" >/dev/null
}

MODULE_SO="$PWD/target/release/libredis_ratelimit.so"
