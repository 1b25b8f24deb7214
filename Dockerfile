# The worker image (worker-gpu, worker-cpu, beat): torch, the evaluation engine, Celery.
#   docker compose build                                   # CUDA 12 wheels (the default)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .   # CPU only
FROM python:3.11-slim

# Where torch comes from: the CUDA 12 wheels by default, https://download.pytorch.org/whl/cpu
# for machines without a GPU. docker-compose.yml passes the same default.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_REQUIREMENT=torch>=2.4

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    EVALBOARD_HOME=/data \
    HF_HOME=/cache/huggingface \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# A fixed uid shared with Dockerfile.dashboard: both images write to the evalboard-data volume.
# Named volumes copy the owner of their mount point from the image on first use.
RUN groupadd --system --gid 10001 evalboard \
    && useradd --system --uid 10001 --gid evalboard --create-home evalboard \
    && mkdir -p /app /data /datasets /cache/huggingface \
    && chown evalboard:evalboard /data /cache/huggingface

WORKDIR /app

# torch first, from its own index, so the resolver never swaps in the other flavour.
RUN pip install --index-url "$TORCH_INDEX_URL" "$TORCH_REQUIREMENT"

# The rest of pyproject.toml's dependencies in their own layer: rebuilt only when it changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(deps))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install . && rm -rf build ./*.egg-info

USER evalboard

CMD ["celery", "-A", "worker.celery_app", "worker", "-Q", "eval,train", "--concurrency", "1", "--loglevel", "INFO"]
