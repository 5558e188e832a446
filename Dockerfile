# exportwatch GitHub Action image: CPU PyTorch, ONNX and the exportwatch package.
#
# GitHub runs Docker actions as root, with the workspace mounted at /github/workspace and
# --workdir set to it, so the image does not switch to a non-root user: reports written
# into the workspace must stay usable by later steps. (Docker actions get no GPU; CUDA users
# take the composite variant in python/action.yml.)
#
# The defaults are what a runner builds (`image: Dockerfile`, no build arguments): the
# python:3.11-slim base, torch from PyTorch's CPU index, the rest from PyPI. The arguments exist
# for machines that reach neither Docker Hub nor download.pytorch.org: `.ci/image` builds this
# same file from a local Debian bookworm base (its python3 is 3.11) and a local wheel directory.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

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

# Where pip looks. Build arguments are environment variables of the RUN steps only (they do not
# stay in the image), and pip reads PIP_* variables: PIP_INDEX_URL for everything but torch,
# PIP_FIND_LINKS / PIP_EXTRA_INDEX_URL (space-separated; empty: none) for local wheels.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_FIND_LINKS=

# The heavy, rarely changing layer first: CPU-only PyTorch at the tested version.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

# A separate layer on purpose (DL3059): upgrading ONNX must not re-download torch.
# hadolint ignore=DL3059
RUN pip install \
        onnx==1.23.2 \
        onnxscript==0.7.2 \
        onnxruntime==1.32.0 \
        PyGithub==2.10.0 \
        PyYAML==6.0.3 \
        pydantic-core==2.46.4 \
        jsonschema==4.26.0

# The package last: code changes rebuild only these small layers.
WORKDIR /opt/exportwatch
COPY pyproject.toml README.md ./
COPY exportwatch ./exportwatch
RUN pip install --no-deps .
COPY entrypoint/entrypoint.sh /usr/local/bin/exportwatch-entrypoint

ENTRYPOINT ["/usr/local/bin/exportwatch-entrypoint"]
