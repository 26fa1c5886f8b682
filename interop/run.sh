#!/usr/bin/env bash
# interop/run.sh runs authkit's interop tests against real identity providers:
# Dex v2.45.1 (built from the Go module proxy) and panva oidc-provider 9.13.3
# (installed from npm), and Chromium from Debian's packages for the real-browser
# tests. It builds/installs them into interop/.work, starts both
# on 127.0.0.1 with free ports, waits for their discovery documents, runs
#
#   go test -race -count=1 ./interop/... [extra go test flags from "$@"]
#
# with AUTHKIT_DEX_ISSUER, AUTHKIT_OIDC_ISSUER and AUTHKIT_CHROMIUM set (and AUTHKIT_OIDC_DIR, the
# installed oidc-provider, for tests that start an instance of their own), and stops both by PID on
# exit, whatever the outcome. The exit status is go test's.
#
# Needs: go, node (>= 20) and npm on PATH, and apt-get (as root or with sudo)
# when chromium is not installed; network access to the Go module proxy, the
# npm registry and Debian's mirror on the first run. Everything it writes stays in
# interop/.work (ignored by git and, since it starts with a dot, by ./...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
work="$here/.work"
logs="$work/log"
mkdir -p "$work/bin" "$logs" "$work/oidc"

say() { printf 'interop: %s\n' "$*" >&2; }
started=$SECONDS

for tool in go node npm; do
	command -v "$tool" >/dev/null || { say "$tool is not on PATH"; exit 2; }
done

# --- obtain the providers -------------------------------------------------

# Dex: a tool module of our own (interop/dex/go.mod) pins the pseudo-version
# of v2.45.1; go build is incremental, so a warm run takes a second or two.
say "building Dex (interop/dex, CGO_ENABLED=0)"
(cd "$here/dex" && GOWORK=off CGO_ENABLED=0 go build -o "$work/bin/dex" github.com/dexidp/dex/cmd/dex)

# oidc-provider: npm ci from our committed lock file, in interop/.work/oidc so
# that node_modules never sits below a directory that ./... walks.
if ! cmp -s "$here/oidc/package-lock.json" "$work/oidc/package-lock.json" ||
	! cmp -s "$here/oidc/package.json" "$work/oidc/package.json" ||
	[ ! -f "$work/oidc/node_modules/oidc-provider/package.json" ]; then
	say "installing oidc-provider (npm ci)"
	cp "$here/oidc/package.json" "$here/oidc/package-lock.json" "$work/oidc/"
	(cd "$work/oidc" && npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$here/oidc/server.mjs" "$work/oidc/server.mjs"

# Chromium for the real-browser tests: Debian's package (IDP.md), never a
# browser a tool downloads itself.
chromium=$(command -v chromium || true)
if [ -z "$chromium" ]; then
	say "installing chromium (apt-get)"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq >"$logs/apt.log" 2>&1
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >>"$logs/apt.log" 2>&1 ||
		{ say "apt-get install chromium failed:"; tail -n 20 "$logs/apt.log" >&2; exit 2; }
	chromium=$(command -v chromium)
fi

say "providers and $("$chromium" --version 2>/dev/null | head -n1) ready after $((SECONDS - started))s"

# --- start them ------------------------------------------------------------

pids=()
cleanup() {
	local status=$?
	for pid in "${pids[@]}"; do
		# The test binary is a child of go test: stop it by its parent's PID.
		if command -v pkill >/dev/null; then pkill -TERM -P "$pid" 2>/dev/null || true; fi
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "$status" -ne 0 ]; then
		for f in "$logs"/dex.log "$logs"/dex-exchange.log "$logs"/oidc.log; do
			[ -s "$f" ] || continue
			say "last lines of $f:"
			tail -n 40 "$f" >&2 || true
		done
	fi
	say "done in $((SECONDS - started))s, exit status $status"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

dex_port=$(free_port)
oidc_port=$(free_port)
while [ "$oidc_port" = "$dex_port" ]; do oidc_port=$(free_port); done
dex2_port=$(free_port)
while [ "$dex2_port" = "$dex_port" ] || [ "$dex2_port" = "$oidc_port" ]; do dex2_port=$(free_port); done
dex2_issuer="http://127.0.0.1:$dex2_port/dex"
sed -e "s|@ISSUER@|$dex2_issuer|" -e "s|@ADDR@|127.0.0.1:$dex2_port|" -e "s|@OIDC_ISSUER@|http://127.0.0.1:$oidc_port|" \
	"$here/dex/exchange.yaml.in" >"$work/dex-exchange.yaml"

dex_issuer="http://127.0.0.1:$dex_port/dex"
oidc_issuer="http://127.0.0.1:$oidc_port"

sed -e "s|@ISSUER@|$dex_issuer|" -e "s|@ADDR@|127.0.0.1:$dex_port|" \
	"$here/dex/config.yaml.in" >"$work/dex.yaml"

# The private_key_jwt client's key, new per run: oidc-provider registers its
# public half, the tests sign with it.
client_key="$work/client-key.pem"
node -e '
	const { generateKeyPairSync } = require("crypto");
	const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
	require("fs").writeFileSync(process.argv[1], privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });' "$client_key"

(cd "$work/oidc" && exec env PORT="$oidc_port" ISSUER="$oidc_issuer" CLIENT_KEY_FILE="$client_key" node server.mjs) >"$logs/oidc.log" 2>&1 </dev/null &
pids+=($!)
oidc_pid=$!

# probe succeeds if the issuer's discovery document answers 200 and names
# the issuer. curl if there is one (quick), node otherwise.
probe() {
	local issuer=$1
	if command -v curl >/dev/null; then
		curl -fsS --max-time 5 "$issuer/.well-known/openid-configuration" 2>/dev/null |
			grep -qE "\"issuer\": *\"$issuer\""
	else
		node -e '
			const [issuer] = process.argv.slice(1);
			fetch(issuer + "/.well-known/openid-configuration")
				.then(r => r.ok ? r.json() : Promise.reject(r.status))
				.then(d => process.exit(d.issuer === issuer ? 0 : 3))
				.catch(() => process.exit(1));' "$issuer" 2>/dev/null
	fi
}

# wait_discovery waits up to 120s for the issuer's discovery document to
# answer 200 with the right issuer, failing early if the process died.
wait_discovery() {
	local name=$1 pid=$2 issuer=$3
	local deadline=$((SECONDS + 120))
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			say "$name exited before it answered"
			return 1
		fi
		if probe "$issuer"; then
			say "$name answers at $issuer after $((SECONDS - started))s"
			return 0
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			say "$name did not answer at $issuer within 120s"
			return 1
		fi
		sleep 0.2
	done
}
wait_discovery oidc-provider "$oidc_pid" "$oidc_issuer"
"$work/bin/dex" serve "$work/dex.yaml" >"$logs/dex.log" 2>&1 </dev/null &
pids+=($!)
dex_pid=$!
# The token exchange Dex after oidc-provider: its OIDC connector discovers
# oidc-provider when it starts.
"$work/bin/dex" serve "$work/dex-exchange.yaml" >"$logs/dex-exchange.log" 2>&1 </dev/null &
pids+=($!)
dex2_pid=$!
wait_discovery dex "$dex_pid" "$dex_issuer"
wait_discovery "dex (token exchange)" "$dex2_pid" "$dex2_issuer"

# --- run the tests -----------------------------------------------------------

say "go test -race -count=1 ./interop/... $*"
cd "$root"
# In the background, so that a signal to this script is handled at once
# (bash runs traps only between foreground commands) and the tests and
# the providers are stopped with it.
AUTHKIT_DEX_ISSUER="$dex_issuer" AUTHKIT_OIDC_ISSUER="$oidc_issuer" AUTHKIT_CHROMIUM="$chromium" \
	AUTHKIT_OIDC_CLIENT_KEY="$client_key" AUTHKIT_DEX_EXCHANGE_ISSUER="$dex2_issuer" \
	AUTHKIT_OIDC_DIR="$work/oidc" go test -race -count=1 "$@" ./interop/... </dev/null &
test_pid=$!
pids=("$test_pid" "${pids[@]}")
if wait "$test_pid"; then status=0; else status=$?; fi
pids=("${pids[@]:1}") # reaped: its PID may be reused
exit "$status"
