#!/bin/bash
# run.sh: builds every tests/fuzz/fuzz-NAME.c with libFuzzer and sanitizers, replays its saved
# crash inputs, then fuzzes it for FUZZ_SECONDS; new crashes are kept as regression inputs.
#   FUZZ_SECONDS=60   time per target (0: only build and replay)
#   FUZZ_TARGETS=csv  only the named targets
# A target lists the modules it links in tests/fuzz/fuzz-NAME.deps (module names, as unit tests).
set -u
cd "$(dirname "$0")/../.."
OUT=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
CC=${FUZZ_CC:-clang}
PKGS="gmime-3.0 libcurl sqlite3 libcjson libxml-2.0"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=gnu11 -D_GNU_SOURCE -g -O1 $SAN $(pkg-config --cflags $PKGS 2>/dev/null) -Isrc"
LIBS="$(pkg-config --libs $PKGS 2>/dev/null) -lcsv -lm"
VERSION=$(cat VERSION 2>/dev/null || echo 0.1.0)

command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)"; exit 1; }
mkdir -p "$OUT/obj" "$OUT/artifacts"

# Compiles src/MODULE.c for fuzzing when it or any header is newer than its object.
build_module() {
	local m=$1 src=src/$1.c obj=$OUT/obj/$1.o
	[ -f "$src" ] || { echo "fuzz: no $src"; return 1; }
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src -name '*.h' -newer "$obj" | head -1)" ]; then
		echo "fuzz: cc $src"
		$CC $CFLAGS -fsanitize=fuzzer-no-link -DSG_VERSION="\"$VERSION\"" -c -o "$obj" "$src" || return 1
	fi
}

failed=0 built=0
for t in tests/fuzz/fuzz-*.c; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .c); name=${name#fuzz-}
	if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then continue; fi
	objs=()
	ok=1
	for m in $(cat "tests/fuzz/fuzz-$name.deps" 2>/dev/null); do
		build_module "$m" || { ok=0; break; }
		objs+=("$OUT/obj/$m.o")
	done
	bin=$OUT/fuzz-$name
	if [ "$ok" -eq 1 ]; then
		echo "fuzz: link $bin"
		$CC $CFLAGS -fsanitize=fuzzer -o "$bin" "$t" "${objs[@]}" $LIBS || ok=0
	fi
	if [ "$ok" -ne 1 ]; then
		echo "FAIL fuzz-$name: build failed"; failed=$((failed + 1)); continue
	fi
	built=$((built + 1))

	corpus=tests/fuzz/corpus/$name regress=tests/fuzz/regress/$name work=$OUT/corpus/$name
	art=$OUT/artifacts/$name/
	mkdir -p "$corpus" "$regress" "$work" "$art"

	# Saved crashes first: each must now run clean.
	shopt -s nullglob
	saved=("$regress"/*)
	shopt -u nullglob
	if [ "${#saved[@]}" -gt 0 ]; then
		if "$bin" -runs=1 "${saved[@]}" >"$OUT/replay-$name.log" 2>&1; then
			echo "ok   fuzz-$name: ${#saved[@]} regression inputs replayed"
		else
			echo "FAIL fuzz-$name: a regression input crashes (log $OUT/replay-$name.log)"
			failed=$((failed + 1)); continue
		fi
	fi
	[ "$SECONDS_EACH" -gt 0 ] || continue

	# New inputs go to the work corpus, so the checked-in seeds stay small.
	log=$OUT/fuzz-$name.log
	"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
		-artifact_prefix="$art" -print_final_stats=1 "$work" "$corpus" >"$log" 2>&1
	rc=$?
	shopt -s nullglob
	crashes=("$art"crash-* "$art"leak-* "$art"timeout-* "$art"oom-*)
	shopt -u nullglob
	for c in "${crashes[@]}"; do cp "$c" "$regress/"; rm -f "$c"; done
	if [ "$rc" -ne 0 ] || [ "${#crashes[@]}" -gt 0 ]; then
		echo "FAIL fuzz-$name: ${#crashes[@]} crash inputs kept in $regress (log $log)"
		grep -m3 -E 'ERROR|SUMMARY' "$log" | sed 's/^/    /'
		failed=$((failed + 1))
	else
		echo "ok   fuzz-$name: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in ${SECONDS_EACH}s, no crash"
	fi
done
echo "fuzz: $built targets built, $failed failed"
[ "$failed" -eq 0 ]
