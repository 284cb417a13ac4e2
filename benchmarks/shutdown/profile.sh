#!/usr/bin/env bash
# Where a shutdown's time goes: N idle streams on one uvicorn process, SIGINT, and py-spy sampling
# the threads that hold the GIL from just before the signal until the process is gone.
# Usage: benchmarks/shutdown/profile.sh [N=10000] [APP=graceful_app] [OUT=benchmarks/shutdown/results/profile-APP.txt]
# Then: python benchmarks/shutdown/profile_summary.py OUT   (needs: .venv/bin/pip install py-spy)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-10000}; app=${2:-graceful_app}; out=${3:-$top/benchmarks/shutdown/results/profile-$app.txt}
py=$top/.venv/bin/python
logs=$(mktemp -d)
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PYTHONPATH="$top/src:$top/benchmarks"
cd "$top/benchmarks/shutdown/apps"
setsid "$top/.venv/bin/uvicorn" "$app:app" --port "$port" --log-level info >"$logs/server.log" 2>&1 &
server=$!
client=""
trap 'kill -KILL -- -$server 2>/dev/null || true; [ -n "$client" ] && kill "$client" 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
"$py" ../client.py --port "$port" -n "$n" --path /stream --ready-timeout 120 >"$logs/client.log" 2>&1 &
client=$!
for _ in $(seq 240); do grep -q '^ready' "$logs/client.log" && break; sleep 0.5; done
"$top/.venv/bin/py-spy" record -p "$server" -r 250 -f raw -o "$out" --nonblocking --gil >"$logs/spy.log" 2>&1 &
spy=$!
sleep 1
start=$(date +%s.%N)
kill -INT -- -"$server"
while kill -0 "$server" 2>/dev/null; do sleep 0.01; done
end=$(date +%s.%N)
wait "$spy" || true
echo "exit $("$py" -c "print(round($end - $start, 3))") s after SIGINT; $(grep -o 'drain took.*' "$logs/server.log" || true)"
echo "samples: $out"
