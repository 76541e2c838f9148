# physarum in a container: the single executable on a slim Debian (glibc and libstdc++,
# which the executable's Node needs). Build on a registry-connected machine:
#   docker build -t physarum .
# Run the allocator with the host's Docker engine and network (instance ports are
# published on the host's 127.0.0.1, which the allocator must reach):
#   docker run -d --name physarum-allocator --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /etc/physarum:/etc/physarum:ro -v physarum-state:/var/lib/physarum \
#     physarum allocator --configfile /etc/physarum/conf.json
# The base images can be swapped (--build-arg BUILD_IMAGE=… RUN_IMAGE=…): scripts/image-check.mjs
# does so on a machine without a registry.
ARG BUILD_IMAGE=node:20-bookworm
ARG RUN_IMAGE=debian:bookworm-slim
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run package && ./dist/physarum --version

FROM ${RUN_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /etc/physarum /var/lib/physarum && chmod 0700 /var/lib/physarum
COPY --from=build /src/dist/physarum /usr/local/bin/physarum
COPY --from=build /src/conf/conf.json /etc/physarum/conf.json
# The identity key lives in the volume, so that a new container keeps the peer ID
# (and adopts the instances its predecessor left running).
ENV HOME=/var/lib/physarum
VOLUME ["/var/lib/physarum"]
EXPOSE 4001/tcp 1234/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/physarum"]
CMD ["allocator", "--configfile", "/etc/physarum/conf.json"]
