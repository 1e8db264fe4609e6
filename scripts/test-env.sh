#!/usr/bin/env bash
# Prepares this machine for slipway's tests (and for `slipway run` with the docker backend):
#   - installs git, Podman (with runc), bubblewrap, slirp4netns, iproute2, mmdebstrap and CA certificates
#     from Debian when missing;
#   - installs the test package registries (tests/support/registries): pypiserver into a venv at
#     /opt/slipway-test/pypiserver and verdaccio (npm) at /opt/slipway-test/verdaccio, pinned;
#   - starts Podman's Docker-compatible API socket at /run/podman/podman.sock (runc runtime:
#     crun fails on hosts with hybrid cgroups);
#   - builds the default sandbox image slipway-sandbox:local when it is absent, or when its
#     `slipway.image.inputs` label differs from the sha256 of deploy/sandbox/{packages.txt,
#     tools.txt,install-tools.sh} (a machine with an older image gets the current toolchains).
# Idempotent; needs root (apt-get, the rootful socket).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
missing=()
command -v git >/dev/null || missing+=(git)
command -v podman >/dev/null || missing+=(podman)
# Podman's container init is only a Recommends; every container with `init = true` needs it.
[ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
[ -x /usr/sbin/runc ] || missing+=(runc)
command -v bwrap >/dev/null || missing+=(bubblewrap)
# The setup sandbox's network: slirp4netns (bwrap backend); nsenter and ip fence it (both).
command -v slirp4netns >/dev/null || missing+=(slirp4netns)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v prlimit >/dev/null || missing+=(util-linux)
command -v strings >/dev/null || missing+=(binutils)
command -v python3 >/dev/null || missing+=(python3)
# `slipway sandbox build` downloads the toolchain wheels of deploy/sandbox/tools.txt with the host's pip.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
# mmdebstrap's Recommends that it uses here: gpg (archive keys) and mount (/proc, /sys in the chroot).
command -v gpg >/dev/null || missing+=(gpg)
command -v mount >/dev/null || missing+=(mount)
[ -s /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
command -v curl >/dev/null || missing+=(curl)
# The test registries: pypiserver runs in a venv (Debian's python3 needs python3-venv for one),
# verdaccio under node and npm (Debian's npm brings Node 18 where no Node is installed); the
# namespace they run in is made with unshare, nsenter and setpriv (util-linux) and ip.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(npm)
command -v setpriv >/dev/null || missing+=(util-linux)
# rustls loads the system roots for the Slack client (native-certs).
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
command -v openssl >/dev/null || missing+=(openssl)   # the GitHub App test makes an RSA key
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The bwrap backend runs the host's /usr: detected Python setup needs uv there (the same
# pinned version as the image's, from its wheel on PyPI).
uv_pin=$(grep -E '^uv==' deploy/sandbox/tools.txt | cut -d= -f3)
if [ "$(/usr/local/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_pin" ]; then
  echo "installing uv $uv_pin into /usr/local/bin (for the bwrap backend)"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "uv==$uv_pin"
  python3 - "$tmp" <<'PY'
import pathlib, sys, zipfile
for whl in pathlib.Path(sys.argv[1]).glob("uv-*.whl"):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if name.endswith(("/scripts/uv", "/scripts/uvx")):
                out = pathlib.Path("/usr/local/bin", name.rsplit("/", 1)[1])
                out.write_bytes(z.read(name))
                out.chmod(0o755)
PY
  rm -rf "$tmp"
  /usr/local/bin/uv --version
fi

# The test registries (tests/support/registries), pinned; reinstalled only when the pin changes.
pypiserver_pin=2.4.2
venv=/opt/slipway-test/pypiserver
if [ "$("$venv/bin/python" -c 'import pypiserver; print(pypiserver.__version__)' 2>/dev/null)" != "$pypiserver_pin" ]; then
  echo "installing pypiserver $pypiserver_pin into $venv (the tests' PyPI registry)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pypiserver==$pypiserver_pin"
fi
# verdaccio 6.10 wants Node 22 through node-fetch 3; 6.8.0 with node-fetch 2.7.0 runs on Node 18/20.
verdaccio_pin=6.8.0
vd=/opt/slipway-test/verdaccio
if [ "$(node -p "require('$vd/node_modules/verdaccio/package.json').version" 2>/dev/null)" != "$verdaccio_pin" ]; then
  echo "installing verdaccio $verdaccio_pin into $vd (the tests' npm registry)"
  rm -rf "$vd" && mkdir -p "$vd"
  printf '{\n  "name": "slipway-test-verdaccio",\n  "private": true,\n  "dependencies": { "verdaccio": "%s" },\n  "overrides": { "node-fetch": "2.7.0" }\n}\n' \
    "$verdaccio_pin" >"$vd/package.json"
  (cd "$vd" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi

sock=/run/podman/podman.sock
if ! curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
  mkdir -p /run/podman
  nohup podman --runtime /usr/sbin/runc system service --time=0 "unix://$sock" \
    >/tmp/slipway-podman-service.log 2>&1 &
  for _ in $(seq 1 50); do
    curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null || {
    echo "the Podman API socket did not come up; see /tmp/slipway-podman-service.log" >&2
    exit 1
  }
fi
export DOCKER_HOST="unix://$sock"

want=$(cat deploy/sandbox/packages.txt deploy/sandbox/tools.txt deploy/sandbox/install-tools.sh | sha256sum | cut -d' ' -f1)
have=$(curl -fsS --unix-socket "$sock" http://d/images/slipway-sandbox:local/json 2>/dev/null \
  | python3 -c 'import json, sys; print(((json.load(sys.stdin).get("Config") or {}).get("Labels") or {}).get("slipway.image.inputs", ""))' \
  2>/dev/null || true)
if [ "$have" != "$want" ]; then
  if [ -z "$have" ]; then
    echo "building the sandbox image (a few minutes)…"
  else
    echo "the sandbox image was built from other inputs (${have:0:12}, now ${want:0:12}): rebuilding (a few minutes)…"
  fi
  cargo run --quiet -- sandbox build
fi
echo "test environment ready: DOCKER_HOST=$DOCKER_HOST, image slipway-sandbox:local"
