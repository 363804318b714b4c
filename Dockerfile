# gradserve: the HTTP service with its embedded worker pool (numpy workers).
#   docker build -t gradserve . && docker run -p 8000:8000 gradserve
# Settings come from GRADSERVE_* variables (see app/settings.py), e.g. -e GRADSERVE_WORKERS=4.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/gradserve
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY app ./app
RUN pip install . && useradd --create-home --uid 10001 gradserve

USER gradserve
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gradserve", "serve", "--host", "0.0.0.0", "--port", "8000"]
