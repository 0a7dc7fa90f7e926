#!/usr/bin/env bash
# bench/cpu-peers.sh [BUILD] [THREADS]
#
# decc against llama.cpp on this machine's CPU, everything in one run: the
# same random weights (bench/make_peer_checkpoint.py: InternVL2-2B's
# language model = InternLM2 1.8B with a vocabulary of 92544, and
# Qwen2.5-0.5B), converted for llama.cpp by its own convert_hf_to_gguf.py;
# the same precision (f32, bf16, f16) and threads; prefill of 128 and 512
# tokens and 64 decode steps after 128, interleaved decc / llama.cpp,
# ROUNDS (2) times; beside them the read bandwidth of the same threads
# (bench/membw) and their FMA peak (bench/fmapeak). Output: one line per
# measurement, tokens/s, then each as a share of that peak (prefill) and
# of the read bandwidth (decode) by bench/cpu_share.py, against the highest
# readings of membw and fmapeak, which run at the start and at the end.
#
# llama.cpp is the one llama-cpp-python's source distribution on PyPI
# vendors (LLAMA_CPP_PYTHON, 0.3.36), built here twice: with its defaults
# (GGML_NATIVE: the host's own vector extensions, "llama.cpp") and for
# x86-64-v3 (AVX2, FMA, F16C, no AVX-512: "llama.cpp-v3"), the peer of
# decc's default build. decc is measured as compiled by default
# (x86-64-v3) and with --cpu=native. LLAMA_V3=0 leaves the second build
# out.
#
# Set-up, cached in WORK (.cpu-peers): a Python environment for the
# converter (VENV, or one made from PyPI: numpy, torch, sentencepiece,
# protobuf, transformers; the converter imports torch), the llama.cpp
# build, the checkpoints and their GGUF files.
# SHAPES (qwen2 internlm2), DTYPES (f32 bf16 f16), DECC_CPUS (default
# native) choose what runs; BASE_BUILD adds decc as that build compiles it
# (x86-64-v3), the baseline of a change, to the same interleaved rounds.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
threads=${2:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "${SHARED:-$here/../../shared}" && pwd)
work=${WORK:-$here/../.cpu-peers}
mkdir -p "$work" && work=$(cd "$work" && pwd)
version=${LLAMA_CPP_PYTHON:-0.3.36}
shapes=${SHAPES:-qwen2 internlm2}
dtypes=${DTYPES:-f32 bf16 f16}
cpus=${DECC_CPUS:-default native}
variants=$cpus
[ -n "${BASE_BUILD:-}" ] && variants="$variants base"
rounds=${ROUNDS:-2}

venv=${VENV:-$work/venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy torch sentencepiece protobuf transformers
fi
py=$venv/bin/python

src=$work/llama_cpp_python-$version/vendor/llama.cpp
if [ ! -d "$src" ]; then
  (cd "$work" && "$py" -m pip download -q --no-binary :all: --no-deps \
    "llama-cpp-python==$version" -d . && tar xzf "llama_cpp_python-$version.tar.gz")
fi
# build_llama NAME [CMAKE FLAGS...]: llama-bench in WORK/NAME, once.
build_llama() {
  local dir=$work/$1
  shift
  [ -x "$dir/bin/llama-bench" ] && return
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF "$@" > "$dir.cmake.log"
  ninja -C "$dir" llama-bench > "$dir.build.log"
}
build_llama build-llama
llama_bench=$work/build-llama/bin/llama-bench
llama_v3=${LLAMA_V3:-1}
llama_bench_v3=$work/build-llama-v3/bin/llama-bench
[ "$llama_v3" = 1 ] && build_llama build-llama-v3 -DGGML_NATIVE=OFF \
  -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF \
  -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF

for shape in $shapes; do
  ckpt=$work/ckpt/$shape
  [ -f "$ckpt/model.safetensors" ] || "$py" "$here/make_peer_checkpoint.py" "$shape" "$shared" "$ckpt"
  for dtype in $dtypes; do
    gguf=$work/$shape-$dtype.gguf
    [ -f "$gguf" ] || "$py" "$src/convert_hf_to_gguf.py" "$ckpt" --outtype "$dtype" \
      --outfile "$gguf" > "$work/convert-$shape-$dtype.log" 2>&1
    for cpu in $variants; do
      exe=$work/decc-$shape-$dtype-$cpu
      flag=$([ "$cpu" = native ] && echo --cpu=native || true)
      decc=$build/bin/decc
      [ "$cpu" = base ] && decc=$BASE_BUILD/bin/decc
      "$decc" "$ckpt/config.json" --dtype "$dtype" $flag -o "$exe" > /dev/null
    done
  done
done

log=$work/last-run.log
: > "$log"
say() { echo "$*" | tee -a "$log"; }
say "cpu-peers: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $threads threads; llama.cpp $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "of llama-cpp-python $version")"
"$build/bin/membw" --threads "$threads" | tee -a "$log"
"$build/bin/fmapeak" --threads "$threads" | tee -a "$log"
decc_run() { # exe weights -> "pp128 pp512 tg64@128" tokens/s
  "$1" --weights "$2" --threads "$threads" --max-context 1024 --benchmark-prefill 128,512 \
    --benchmark-decode 128 --benchmark-steps 64 2>&1 | python3 -c '
import re, sys
text = sys.stdin.read()
pp = dict(re.findall(r"prefill (\d+) tokens: [\d.]+ ms \(median of \d+\), ([\d.]+) tokens/s", text))
tg = re.search(r"decode after 128 tokens: \d+ steps, ([\d.]+) ms/token", text)
if not pp or not tg:
    sys.exit("decc benchmark failed: " + text[-300:])
print("pp128 %s pp512 %s tg64@128 %.2f" % (pp["128"], pp["512"], 1000 / float(tg.group(1))))'
}
llama_run() { # llama-bench gguf -> "pp128 pp512 tg64@128" tokens/s
  { "$1" -m "$2" -t "$threads" -p 128,512 -n 0 -r 2 -o csv
    "$1" -m "$2" -t "$threads" -p 0 -n 64 -d 128 -r 2 -o csv | tail -n +2; } 2> /dev/null |
    python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
get = lambda p, g: next(float(r["avg_ts"]) for r in rows if int(r["n_prompt"]) == p and int(r["n_gen"]) == g)
print(f"pp128 {get(128, 0):.2f} pp512 {get(512, 0):.2f} tg64@128 {get(0, 64):.2f}")'
}
for round in $(seq "$rounds"); do
  for shape in $shapes; do
    for dtype in $dtypes; do
      for cpu in $variants; do
        say "round $round $shape $dtype decc-$cpu: $(decc_run "$work/decc-$shape-$dtype-$cpu" "$work/ckpt/$shape")"
      done
      say "round $round $shape $dtype llama.cpp: $(llama_run "$llama_bench" "$work/$shape-$dtype.gguf")"
      [ "$llama_v3" = 1 ] &&
        say "round $round $shape $dtype llama.cpp-v3: $(llama_run "$llama_bench_v3" "$work/$shape-$dtype.gguf")"
    done
  done
done
# The ceilings again: a shared host's bandwidth moves within a run, and the
# shares take the highest reading.
"$build/bin/membw" --threads "$threads" | tee -a "$log"
"$build/bin/fmapeak" --threads "$threads" | tee -a "$log"
python3 "$here/cpu_share.py" "$work" < "$log"
