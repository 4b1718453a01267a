#!/usr/bin/env bash
# The system packages toolplane needs, checked before `make run`, `make test` and CI (.ci/run).
# Usage: scripts/setup-system.sh run|test
#   run   what `make run` needs: a C toolchain (native addons) and the Python sandbox (bubblewrap, Debian's Python libs)
#   test  also what `make test` needs: protoc, nats-server, the Python client's and the Jupyter baseline's packages
# When everything is installed this is one dpkg query (no apt-get update). Missing packages are installed when this
# user may do so without a prompt (root, or sudo -n); otherwise the exact command is printed and the script fails.
set -euo pipefail

RUN_PACKAGES=(
  gcc g++ make libc6-dev libseccomp-dev
  bubblewrap python3-numpy python3-pil python3-matplotlib python3-opencv python3-scipy python3-autopep8 python3-cloudpickle
)
TEST_PACKAGES=(
  protobuf-compiler nats-server
  python3-grpcio python3-protobuf python3-pytest python3-ipykernel python3-jupyter-client
)

case "${1:-run}" in
  run) wanted=("${RUN_PACKAGES[@]}") ;;
  test) wanted=("${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
  *)
    echo "usage: $0 run|test" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "toolplane: not a Debian/Ubuntu system, system packages not checked; toolplane needs the equivalents of: ${wanted[*]}" >&2
  exit 0
fi

installed="$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${wanted[@]}" 2>/dev/null || true)"
missing=()
for package in "${wanted[@]}"; do
  grep -qx "${package} ii *" <<<"${installed}" || missing+=("${package}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

install_line="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "toolplane: missing system packages (${missing[*]}); install them with: sudo sh -c '${install_line}'" >&2
  exit 1
fi

echo "toolplane: installing missing system packages: ${missing[*]}" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
