# myclerk-bridge: the hub and Matrix bridge in a small non-root image.
#   docker build -t myclerk-bridge .
#   docker run -v myclerk-data:/data -p 7410:7410 -p 29340:29340 myclerk-bridge
# The first run without /data/config.yaml copies the example there; edit it
# (listen on 0.0.0.0 in a container), then `register` and restart.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# cgo stays on: bridgev2 builds its end-to-bridge encryption only with cgo;
# goolm makes that encryption pure Go (no libolm).
RUN go build -tags goolm -trimpath -ldflags='-s -w' -o /out/myclerk-bridge . && \
    cp config.example.yaml /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini && \
    rm -rf /var/lib/apt/lists/* && \
    useradd --system --uid 1337 --home /data myclerk && mkdir -p /data && chown myclerk /data
COPY --from=build /out/myclerk-bridge /usr/local/bin/myclerk-bridge
COPY --from=build /out/config.example.yaml /usr/share/myclerk-bridge/config.example.yaml
USER myclerk
WORKDIR /data
VOLUME /data
EXPOSE 7410 7411 7412 7419 29340
HEALTHCHECK --interval=30s --timeout=5s CMD ["myclerk-bridge", "health", "-url", "http://127.0.0.1:7419/health"]
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/sh", "-c", "[ -f /data/config.yaml ] || cp /usr/share/myclerk-bridge/config.example.yaml /data/config.yaml; exec myclerk-bridge \"$@\"", "--"]
CMD ["hub", "-config", "/data/config.yaml"]
