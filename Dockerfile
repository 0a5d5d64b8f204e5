# The Argus gateway image. Normally built and run by compose.yaml (see docs/operations.md).
#
# Build args: BASE_IMAGE (default python:3.12-slim), EXTRA_CA_CERTS (PEM text of extra CA
# certificates, for builds and deployments behind a TLS-inspecting proxy).
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ARG EXTRA_CA_CERTS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      mkdir -p /usr/local/share/ca-certificates && \
      printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/argus-extra.crt && \
      update-ca-certificates >/dev/null 2>&1; \
    fi

COPY pyproject.toml README.md /src/
COPY argus /src/argus
RUN python3 -m venv /opt/argus && /opt/argus/bin/pip install --quiet /src && rm -rf /src /root/.cache
ENV PATH=/opt/argus/bin:$PATH ARGUS_HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/opt/argus/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["/opt/argus/bin/argus", "serve"]
