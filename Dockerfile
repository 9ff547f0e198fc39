# meshgate's image: one node per container, every `meshgate serve` flag from MESHGATE_* env.
#
#   docker build -t meshgate:$(python3 -c 'import node; print(node.__version__)') \
#     --build-arg VERSION=$(python3 -c 'import node; print(node.__version__)') .
#   docker run -p 30000:30000 -v meshgate-data:/data -e MESHGATE_API_KEY=... meshgate:<version>
#
# A mesh adds MESHGATE_MESH_BIND=0.0.0.0:30100, MESHGATE_MESH_ADVERTISE,
# MESHGATE_MESH_PEERS and MESHGATE_MESH_SECRET (deploy/kubernetes/statefulset.yaml).
ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: wheels of meshgate and of every dependency ---------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# The label must say the version the wheel carries: no default, and checked against node/.
ARG VERSION
WORKDIR /src
COPY pyproject.toml README.md ./
COPY node ./node
COPY mesh ./mesh
RUN built=$(python -c 'import node; print(node.__version__)') \
    && if [ "$VERSION" != "$built" ]; then \
         echo "pass --build-arg VERSION=$built (node.__version__), not '$VERSION'" >&2; exit 1; \
       fi
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# -- the image: the wheels only, no build tools or sources ---------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION
LABEL org.opencontainers.image.title="meshgate" \
      org.opencontainers.image.description="LLM inference gateway: a mesh of identical nodes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# UID 10001 is the one deploy/kubernetes/statefulset.yaml runs as.
RUN groupadd --system --gid 10001 meshgate \
    && useradd --system --uid 10001 --gid meshgate --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin meshgate \
    && mkdir /data && chown meshgate:meshgate /data
COPY --from=builder /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels meshgate \
    && rm -rf /tmp/wheels
# Listen off loopback (the config then insists on a credential, e.g. MESHGATE_API_KEY);
# keep the Raft journal and snapshots on the volume.
ENV MESHGATE_HOST=0.0.0.0 \
    MESHGATE_PORT=30000 \
    MESHGATE_DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME /data
# 30000: HTTP (the --port default); 30100: Raft, when MESHGATE_MESH_BIND names it.
EXPOSE 30000 30100
USER 10001:10001
# No curl in a slim image: Python asks /liveness (a 503 raises, so the check fails).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MESHGATE_PORT', '30000') + '/liveness', timeout=2)"]
# meshgate is PID 1 (no shell), so it gets the SIGTERM that drains it.
ENTRYPOINT ["meshgate", "serve"]
