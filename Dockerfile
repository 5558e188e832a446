# exportwatch GitHub Action image: CPU PyTorch, ONNX and the exportwatch package.
#
# GitHub runs Docker actions as root, with the workspace mounted at /github/workspace and
# --workdir set to it, so the image does not switch to a non-root user: reports written
# into the workspace must stay usable by later steps. (Docker actions get no GPU; CUDA users
# take the composite variant in python/action.yml.)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# git finds the merge-base and checks out the base in a worktree. The workspace belongs to
# the runner's user, not root: mark it safe or git refuses to work in it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

# The heavy, rarely changing layer first: CPU-only PyTorch at the tested version.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# A separate layer on purpose (DL3059): upgrading ONNX must not re-download torch.
# hadolint ignore=DL3059
RUN pip install \
        onnx==1.23.2 \
        onnxscript==0.7.2 \
        onnxruntime==1.32.0 \
        PyGithub==2.10.0 \
        PyYAML==6.0.3 \
        jsonschema==4.26.0

# The package last: code changes rebuild only these small layers.
WORKDIR /opt/exportwatch
COPY pyproject.toml README.md ./
COPY exportwatch ./exportwatch
RUN pip install --no-deps .
COPY entrypoint/entrypoint.sh /usr/local/bin/exportwatch-entrypoint

ENTRYPOINT ["/usr/local/bin/exportwatch-entrypoint"]
