#!/usr/bin/env bash
# What a machine with a CUDA GPU checks, which CI (no GPU) cannot: the gpu-marked tests, every
# engine test on the cupy backend, the HTTP suites that compute with GRADSERVE_BACKEND=cupy,
# then bench.gpu. Logs go to $OUT (the device tool's folder) or ./gpu-checks. Arguments, if any,
# name the steps to run (gpu-tests engine-on-cupy api-on-cupy bench-gpu).
set -uo pipefail
out=${OUT:-gpu-checks}
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi -L
"$python" -c "import cupy; print('cupy', cupy.__version__, 'devices:', cupy.cuda.runtime.getDeviceCount())"
status=0
only=" $* "
run() {  # a step's log in $out/$1.log, its last lines here; a failed step fails the script
    local name=$1
    shift
    [[ $only == "  " || $only == *" $name "* ]] || return 0
    echo "== $name"
    "$@" >"$out/$name.log" 2>&1 || status=1
    tail -n 15 "$out/$name.log"
}
# Not on cupy: the real-server variants (a subprocess that may not see this Python's extra
# paths), and the deadline test whose 1,000 sweeps a GPU finishes inside the deadline.
on_cupy="not uvicorn and not bytes_that_are_not_http and not stops_at_its_deadline"
run gpu-tests "$python" -m pytest -q -p no:cacheprovider -ra tests/engine/test_gpu.py tests/api/test_gpu_service.py
run engine-on-cupy "$python" -m pytest -q -p no:cacheprovider -k cupy tests/engine
run api-on-cupy env GRADSERVE_BACKEND=cupy "$python" -m pytest -q -p no:cacheprovider -k "$on_cupy" \
    tests/api/test_derivative.py tests/api/test_seeds.py tests/api/test_sparse.py tests/api/test_linearize.py \
    tests/api/test_errors.py tests/api/test_verification.py
run bench-gpu "$python" -m bench.gpu
exit $status
