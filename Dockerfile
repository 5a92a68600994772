# syntax=docker/dockerfile:1
# groom in a container: the binary `deno task build` compiles (with groom's own permission list,
# scripts/permissions.ts) on a distroless base holding only glibc, libgcc and CA certificates,
# running as an unprivileged user. Multi-platform: linux/amd64 and linux/arm64.
#
#   docker build -t groom .
#   docker run -d --name groom -p 443:443 -v /srv/groom:/etc/groom:ro groom
#
# /srv/groom holds groom.conf (listen = [ "*:443,/etc/groom/cert.pem,/etc/groom/key.pem" ],
# domains = "/etc/groom/domains"), the certificate and the domain files; see README "Container".
# Logs go to the console: docker logs groom. Reload: docker kill --signal HUP groom.
# An agent runs from the same image with an agent configuration (no port to publish).

ARG DENO_VERSION=2.9.6

# Cross-compiles on the build machine's platform: deno compile fetches the target's runtime.
FROM --platform=$BUILDPLATFORM denoland/deno:${DENO_VERSION} AS build
ARG TARGETARCH
USER root
WORKDIR /src
COPY . .
RUN case "$TARGETARCH" in \
        amd64) target=linux-x86_64 ;; \
        arm64) target=linux-aarch64 ;; \
        *) echo "groom is built for amd64 and arm64, not $TARGETARCH" >&2; exit 1 ;; \
    esac \
    && deno task build --target "$target" --no-zip \
    && mkdir -p /out/etc/groom/domains \
    && cp "dist/compile/groom/groom-$target" /out/groom \
    && cp -r conf /out/conf

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="groom" \
      org.opencontainers.image.description="HTTPS reverse proxy with tunnels to private backends"
COPY --from=build /out/groom /usr/bin/groom
COPY --from=build /out/conf /usr/share/groom/conf
COPY --from=build --chown=nonroot:nonroot /out/etc/groom /etc/groom
USER nonroot
EXPOSE 443
ENTRYPOINT ["/usr/bin/groom"]
CMD ["/etc/groom/groom.conf"]
