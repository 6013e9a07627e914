# The forewarn cloud service (and the command line) in one image.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends mosquitto \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY edge edge
COPY cloud cloud
COPY simulators simulators
COPY firmware_specs firmware_specs
COPY forewarn forewarn
RUN pip install --no-cache-dir ".[all]"
RUN useradd --system --home /data forewarn && mkdir -p /data && chown forewarn /data
USER forewarn
ENV FOREWARN_DATA_DIR=/data FOREWARN_HTTP_HOST=0.0.0.0
EXPOSE 8000
ENTRYPOINT ["forewarn"]
CMD ["cloud"]
