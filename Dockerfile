# gradserve's images (README, Deploy). Three targets, built with BuildKit:
#   cpu (the default)  numpy workers               docker build -t gradserve .
#   gpu                cupy workers on a CUDA GPU  docker build --target gpu -t gradserve:gpu .
#   ray                cpu, with Ray               docker build --target ray -t gradserve:ray .
# docker run -p 127.0.0.1:8000:8000 gradserve; settings are GRADSERVE_* variables (-e GRADSERVE_WORKERS=4).
#
# Each target's dependencies are installed in a layer that only a change of its requirements
# invalidates, and downloads stay in BuildKit's pip cache between builds: editing the code
# rebuilds only the gradserve wheel, which the runtime stage installs.

FROM python:3.11-slim AS python
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/gradserve/bin:$PATH

# The requirements of each target, from pyproject.toml: the layers below are keyed on these
# files, so pyproject.toml's other contents (the test extra, the tools' settings) leave them be.
FROM python AS requirements
WORKDIR /build
COPY pyproject.toml scripts/requirements.py ./
RUN python requirements.py > core.txt \
 && python requirements.py gpu > gpu.txt \
 && python requirements.py ray > ray.txt

# The dependencies, in a virtual environment that the runtime stage copies whole; it has no pip
# of its own (the image's pip installs into it with --python).
FROM python AS dependencies
COPY --from=requirements /build/core.txt /build/
RUN --mount=type=cache,target=/root/.cache/pip python -m venv --without-pip /opt/gradserve \
 && pip --python /opt/gradserve/bin/python install --requirement /build/core.txt

FROM dependencies AS dependencies-gpu
COPY --from=requirements /build/gpu.txt /build/
RUN --mount=type=cache,target=/root/.cache/pip pip --python /opt/gradserve/bin/python install --requirement /build/gpu.txt

FROM dependencies AS dependencies-ray
COPY --from=requirements /build/ray.txt /build/
RUN --mount=type=cache,target=/root/.cache/pip pip --python /opt/gradserve/bin/python install --requirement /build/ray.txt

# gradserve itself, as a wheel (its dependencies are above).
FROM python AS wheel
WORKDIR /build
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY app ./app
COPY gradserve ./gradserve
RUN --mount=type=cache,target=/root/.cache/pip pip wheel --no-deps --wheel-dir /wheels .

FROM python AS runtime
RUN useradd --no-log-init --create-home --uid 10001 --user-group gradserve
WORKDIR /home/gradserve
EXPOSE 8000
# /healthz answers while the process serves HTTP; python is in every image, curl in none.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gradserve", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM runtime AS gpu
COPY --from=dependencies-gpu /opt/gradserve /opt/gradserve
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip --python /opt/gradserve/bin/python install --no-cache-dir --no-deps --no-index /wheels/*.whl \
 && pip --python /opt/gradserve/bin/python check
# The address-space cap of a numpy worker is off on a GPU (app/worker.py); the CUDA libraries
# come from the wheels, the driver from the host (docker run --gpus all).
ENV GRADSERVE_BACKEND=cupy
USER 10001

FROM runtime AS ray
COPY --from=dependencies-ray /opt/gradserve /opt/gradserve
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip --python /opt/gradserve/bin/python install --no-cache-dir --no-deps --no-index /wheels/*.whl \
 && pip --python /opt/gradserve/bin/python check \
 && mkdir /home/gradserve/.ray && chown 10001:10001 /home/gradserve/.ray
# ~/.ray is made here, the user's, so that a volume mounted on it (the cluster's token, in
# docker-compose.yml) is the user's too. Nothing leaves the cluster: no usage reports to Ray.
ENV RAY_USAGE_STATS_ENABLED=0
USER 10001

FROM runtime AS cpu
COPY --from=dependencies /opt/gradserve /opt/gradserve
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip --python /opt/gradserve/bin/python install --no-cache-dir --no-deps --no-index /wheels/*.whl \
 && pip --python /opt/gradserve/bin/python check
USER 10001
