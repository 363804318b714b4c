import pytest

from engine.backend import gpu_available

# Every engine test runs on numpy and on array-api-strict, so that a numpy-only call in a
# primitive (which would break the cupy path) fails here; on a GPU machine, on cupy too.
BACKENDS = ["numpy", "array_api_strict"] + (["cupy"] if gpu_available() else [])


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    return request.param
