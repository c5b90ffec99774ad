#!/usr/bin/env bash
# Every GPU figure of benchmarks/throughput.py in one run, on any machine with
# an NVIDIA GPU and JAX (TensorFlow not needed).
#
#   pip install -e ".[jax]" && pip install -U "jax[cuda12]"   # or a JAX already there
#   ADANAS_DATA_DIR=/path/to/data bash benchmarks/device_check.sh [STAGE ...]
#
# On a machine that cannot reach a package index, bring Keras and its pure-Python
# dependencies as wheels in .whl/ (they are installed from there with --no-index):
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl keras namex optree
# and the data as .device/data/cifar10-dev.npz (the default when ADANAS_DATA_DIR
# is unset).
#
# Stages, most needed first, each under its own time limit so that one slow
# compile leaves the others their time; each writes $OUT/<stage>.json as soon
# as it ends, and everything printed goes to $OUT/log too:
#   float32  A-E and G at 2@192, batch 32 (F needs TensorFlow: skipped)
#   mixed    A and B under mixed_float16
#   paper    A and B at 6@768, the paper's member
# Pass stage names to run fewer, e.g. `bash benchmarks/device_check.sh mixed`.
# Without a GPU it runs the same on the CPU, slowly; a quick dry run of the
# script: DEVICE_CHECK_ARGS="--architecture 1@24 --steps 2 --repeats 1", which
# every stage's arguments end with.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-/tmp/adanas-device}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND="${KERAS_BACKEND:-jax}" PYTHONUNBUFFERED=1
DATA="${ADANAS_DATA_DIR:-.device/data}/cifar10-dev.npz"

nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
python3 -c "import jax, keras; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices())"

stage() {  # stage NAME SECONDS THROUGHPUT-ARGUMENTS...
  local name=$1 seconds=$2
  shift 2
  echo "== $name (at most ${seconds}s): throughput.py $*"
  local start=$SECONDS
  timeout "$seconds" python3 benchmarks/throughput.py --data "$DATA" \
    --json "$OUT/$name.json" --workdir /tmp/adanas-throughput "$@" ${DEVICE_CHECK_ARGS:-}
  echo "== $name: exit $?, $((SECONDS - start))s"
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(float32 mixed paper)
for name in "${stages[@]}"; do
  case $name in
    float32) stage float32 270 --only ABCDEG ;;
    mixed) stage mixed 150 --only AB --mixed-precision ;;
    paper) stage paper 150 --only AB --architecture 6@768 --repeats 3 ;;
    *) echo "unknown stage: $name (float32, mixed, paper)" && exit 2 ;;
  esac
done
