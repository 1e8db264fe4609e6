#!/usr/bin/env bash
# slipway's quick start: one real task on a sample repo with the embedded defaults
# (sled store, docker sandbox when Podman/Docker answers else bwrap, local forge).
#
# - Copies examples/calc (a calculator whose add() subtracts) into a fresh git repo.
# - With SLIPWAY_LLM_PROVIDER set, your model does the work. Without it, a recorded session
#   (examples/calc/replay.json) is replayed by examples/replay_llm.rs over the OpenAI wire
#   format on loopback: the runner, sandbox, checks, git and store are all real.
# - Prints the run report; the fixed branch lands in the sample repo.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# Installs Podman/bubblewrap when missing, starts the engine socket, builds the sandbox image.
if [ "$(id -u)" = 0 ] && [ -z "${SLIPWAY_SKIP_ENV:-}" ]; then bash scripts/test-env.sh >&2; fi
cargo build --quiet ${SLIPWAY_PROFILE:+--profile $SLIPWAY_PROFILE} --bin slipway --example replay_llm

work="${SLIPWAY_QUICKSTART_DIR:-$(mktemp -d /tmp/slipway-quickstart.XXXXXX)}"
repo="$work/calc"
rm -rf "$repo" && mkdir -p "$repo"
cp examples/calc/calc.py examples/calc/test_calc.py examples/calc/AGENTS.md "$repo/"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=quickstart -c user.email=qs@example.com add -A
git -C "$repo" -c user.name=quickstart -c user.email=qs@example.com commit -qm "calculator with a bug"

if [ -z "${SLIPWAY_LLM_PROVIDER:-}" ]; then
  fifo="$work/replay.url"
  ./target/${SLIPWAY_PROFILE:-debug}/examples/replay_llm examples/calc/replay.json >"$fifo" &
  replay_pid=$!
  trap 'kill $replay_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do [ -s "$fifo" ] && break; sleep 0.1; done
  export SLIPWAY_LLM_PROVIDER=openai SLIPWAY_LLM_MODEL=replay SLIPWAY_LLM_BASE_URL="$(cat "$fifo")"
  echo "no SLIPWAY_LLM_PROVIDER set: replaying a recorded session from examples/calc/replay.json" >&2
fi
[ -S /run/podman/podman.sock ] && export DOCKER_HOST="${DOCKER_HOST:-unix:///run/podman/podman.sock}"
export SLIPWAY_DATA_DIR="${SLIPWAY_DATA_DIR:-$work/data}"

set +e
./target/${SLIPWAY_PROFILE:-debug}/slipway run --repo "$repo" --json "add() in calc.py subtracts instead of adding; fix it"
status=$?
set -e
echo "sample repo: $repo (branches: $(git -C "$repo" branch --list 'slipway/*' | tr -d ' \n'))" >&2
exit $status
