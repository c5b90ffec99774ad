#!/usr/bin/env bash
# Every GPU figure of benchmarks/throughput.py in one call of the device tool
# (an H200 with JAX and no TensorFlow; 15 minutes of device time per task).
#
# Here, once, in the repository root (both folders are ignored, so carried):
#   echo /.whl/ >> .git/info/exclude; echo /.device/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 \
#     --platform manylinux_2_17_x86_64 -d .whl keras==3.15.1 namex optree
#   mkdir -p .device/data && cp ../shared/data/cifar10-dev.npz .device/data/
# Then the device tool's `run`, with carry [".whl", ".device"] and timeout_s 600:
#   bash benchmarks/device_check.sh
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
[ -f "$DATA" ] || DATA="../shared/data/cifar10-dev.npz"

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
