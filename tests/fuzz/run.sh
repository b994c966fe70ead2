#!/usr/bin/env bash
# tests/fuzz/run.sh: the libFuzzer harnesses of httpd's request parsing, in
# bounded time (make test runs it; PAAS_FUZZ_SECS, default 20).
#   fuzz_request    httpd/request.c + routes.c: nesting bound and JSON parse,
#                   query, path canonicalisation and routing, framing
#                   headers, X-Forwarded-For, proxy ranges
#   fuzz_ratelimit  httpd/ratelimit.c with a 64-slot table: a live bucket
#                   is never reset (a quarter of the time of the first)
# Built with clang -fsanitize=fuzzer,address,undefined; any crash, sanitizer
# report or broken check fails the step, and the input is kept in
# $PAAS_FUZZ_ARTIFACTS (default: a directory that is printed).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${PAAS_FUZZ_SECS:-20}
OUT=$(mktemp -d)
ART=${PAAS_FUZZ_ARTIFACTS:-$OUT/artifacts}
mkdir -p "$ART"
ok=0
trap '[ $ok -eq 1 ] && rm -rf "$OUT"' EXIT

FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Ihttpd"
clang $FLAGS -o "$OUT/fuzz_request" tests/fuzz/fuzz_request.c httpd/request.c httpd/routes.c -ljansson
clang $FLAGS -DRATELIMIT_SLOTS=64 -o "$OUT/fuzz_ratelimit" tests/fuzz/fuzz_ratelimit.c httpd/ratelimit.c -pthread

# the corpus in the tree stays as committed: the run grows a copy
cp -r tests/fuzz/corpus "$OUT/corpus"
mkdir -p "$OUT/corpus-rl"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run() {
	local bin=$1 secs=$2 corpus=$3
	shift 3
	if ! "$OUT/$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$ART/" "$@" "$corpus" >"$OUT/$bin.log" 2>&1; then
		tail -n 60 "$OUT/$bin.log"
		echo "fuzz: $bin failed; input kept in $ART" >&2
		exit 1
	fi
	awk -v b="$bin" '/stat::number_of_executed_units/ {n=$2} /stat::peak_rss_mb/ {r=$2}
		END {printf "fuzz: %s %s runs, no crash (peak RSS %s MB)\n", b, n, r}' "$OUT/$bin.log"
}
run fuzz_request "$SECS" "$OUT/corpus" -max_len=65536
run fuzz_ratelimit "$(( (SECS + 3) / 4 ))" "$OUT/corpus-rl" -max_len=4096
ok=1
