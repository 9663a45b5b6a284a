#!/usr/bin/env bash
# The CUDA backend on an NVIDIA GPU, as run for bench/README.md: build,
# the kernel tests on the `cuda` backend, compute-sanitizer, the benchmark.
#
#   bench/cuda_gpu.sh build     OUT   # pip wheel + install (nvcc must be on PATH); the wheel goes to OUT
#   bench/cuda_gpu.sh install   WHEEL # install a wheel built by `build`
#   bench/cuda_gpu.sh test      OUT   # the kernel test routes on QMETAL_BACKEND=cuda
#   bench/cuda_gpu.sh sanitize  OUT   # compute-sanitizer memcheck, racecheck, synccheck
#   bench/cuda_gpu.sh bench     OUT NAME [OPTIONS]  # python -m qmetal bench --backend cuda OPTIONS > OUT/bench_NAME.txt
#   bench/cuda_gpu.sh profile   OUT NAME REGEX [OPTIONS]  # the bench under Nsight Compute, kernels matching REGEX
#
# Wheels in .whl/ (mlx, mlx-cpu, gguf for a machine without network) are
# installed into /tmp/site first. Logs go to OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
step=$1
out=${2:-/tmp/qmetal-cuda}
mkdir -p "$out"
export PATH=$PATH:/usr/local/cuda/bin PYTHONUNBUFFERED=1 QMETAL_TEST_SEED=${QMETAL_TEST_SEED:-12}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# The tests of kernels that run on the default device (not the simulator's
# own, Metal's or the C++ packaging tests).
KERNEL_TESTS="tests/test_cuda_backend.py tests/test_cuda_routes.py tests/test_affine.py tests/test_ggml.py
  tests/test_hardening.py tests/test_device_plan.py tests/test_buffer.py tests/test_fuzz_ops.py
  tests/test_fuzz_files.py tests/test_llama_layer_example.py tests/test_mlx_loader.py"

case $step in
  build)
    python3 -c "import numpy, ml_dtypes, nanobind, scikit_build_core, pytest, xdist, mlx.core, gguf; print('python ok')"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
    nvcc --version | tail -2
    env | grep -E "^(C|CXX|LD|CPP)FLAGS=|CMAKE" || true
    # The image's compiler flags (if any) stay out: a statically linked
    # libstdc++ crashed every C++ exception's message formatting here.
    unset CFLAGS CXXFLAGS LDFLAGS CPPFLAGS
    export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
    rm -rf /tmp/wheel
    time python3 -m pip wheel -v --no-build-isolation --no-deps --no-index -w /tmp/wheel . \
      -Ccmake.define.QMETAL_BUILD_CUDA=ON > "$out/build.log" 2>&1
    rc=$?
    grep -E "CUDA backend|error|Error" "$out/build.log" | head -40
    [ $rc = 0 ] || { tail -60 "$out/build.log"; exit $rc; }
    python3 -m pip install -q --no-deps --no-index --force-reinstall /tmp/wheel/qmetal-*.whl || exit 1
    ls -la /tmp/wheel
    readelf -d "$(python3 -c 'import qmetal; print(qmetal._core.__file__)')" | grep NEEDED
    (cd /tmp/wheel && split -b 15m qmetal-*.whl "$out/qmetal-wheel.part.")
    ;;
  diag)
    # A C++ exception through the module (ValueError), on each backend.
    for b in sim cuda; do
      QMETAL_BACKEND=$b python3 -c "import numpy as np, qmetal
try: qmetal.quantize(np.zeros((4, 64), np.float32), 7, 64)
except ValueError as e: print('$b: ValueError ok')" || {
        echo "$b: crashed rc=$?"
        QMETAL_BACKEND=$b timeout 45 cuda-gdb -batch -ex run -ex bt --args python3 -c "import numpy as np, qmetal
qmetal.quantize(np.zeros((4, 64), np.float32), 7, 64)" 2>&1 | grep -E "^#|signal" | head -25; }
    done
    ldd "$(python3 -c 'import qmetal, os; print(qmetal._core.__file__)')" | grep -i -E "cuda|rt\."
    ;;
  install)
    python3 -m pip install -q --no-deps --no-index --force-reinstall "$2" || exit 1
    ;;
  test)
    python3 -c "import qmetal; print('cuda:', qmetal._core.backend_status('cuda'))"
    # shellcheck disable=SC2086
    QMETAL_BACKEND=cuda timeout ${TEST_TIMEOUT:-330} python3 -m pytest -q -p no:cacheprovider -n 8 -rs $KERNEL_TESTS \
      > "$out/tests.log" 2>&1
    echo "pytest rc=$?"
    tail -25 "$out/tests.log"
    ;;
  sanitize)
    for tool in memcheck synccheck racecheck; do
      filter=()
      # racecheck instruments every shared-memory access: every route, fewer widths.
      filter=(-k "${SANITIZE_FILTER:--4- or gather or ggml or test_cuda_backend}")
      start=$(date +%s)
      QMETAL_BACKEND=cuda timeout ${SANITIZE_TIMEOUT:-300} compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 20 \
        python3 -m pytest -q -p no:cacheprovider "${filter[@]}" tests/test_cuda_routes.py tests/test_cuda_backend.py \
        > "$out/sanitize_$tool.log" 2>&1
      echo "compute-sanitizer --tool $tool: rc=$? in $(( $(date +%s) - start )) s"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed|failed|error" "$out/sanitize_$tool.log" | tail -5
    done
    ;;
  bench)
    # bench OUT NAME [bench options...]: one table per call, in OUT/bench_NAME.txt
    name=${3:-default}
    shift 3 2>/dev/null || shift $#
    timeout ${BENCH_TIMEOUT:-480} python3 -m qmetal bench --backend cuda "$@" > "$out/bench_$name.txt" 2>"$out/bench_$name.err"
    echo "bench $name ($*) rc=$?"
    cat "$out/bench_$name.txt"
    tail -5 "$out/bench_$name.err"
    ;;
  profile)
    # profile OUT NAME REGEX [bench options...]: every launch of the kernels
    # matching REGEX (ours and the peers') under ncu, in OUT/ncu_NAME.txt.
    # The clocks stay as they are (--clock-control none); ncu flushes caches
    # before each replay, as the bench does.
    name=$3 regex=$4
    shift 4
    timeout ${PROFILE_TIMEOUT:-300} ncu --clock-control none -k "regex:$regex" --launch-count ${PROFILE_LAUNCHES:-40} \
      --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
      --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      python3 -m qmetal bench --backend cuda --repeat 1 "$@" > "$out/ncu_$name.txt" 2>"$out/ncu_$name.err"
    echo "profile $name ($regex; $*) rc=$?"
    grep -E "^  [a-z_].*\(|Duration|Achieved Occupancy|Issue Slots Busy|Memory Throughput|Registers Per" "$out/ncu_$name.txt" | head -60
    tail -3 "$out/ncu_$name.err"
    ;;
esac
