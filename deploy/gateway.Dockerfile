# The gateway of docker-compose.yml: Debian's nginx with its Lua module, which answers the
# queue join itself (deploy/lua/queue_join.lua), as deploy/setup.sh installs it for make run.
# The template is at /etc/nginx/templates/nginx.conf.template (docker-compose.yml mounts the
# working tree's over the image's copy; Kubernetes, deploy/k8s, uses the copy) and is
# rendered at start from the container's GATEWAY_* variables (deploy/gateway-entrypoint.sh).
# Build from the repo root: docker build -f deploy/gateway.Dockerfile .
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        nginx libnginx-mod-http-lua lua-nginx-redis lua-cjson lua-resty-lrucache \
        gettext-base curl \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /etc/nginx/logs /etc/nginx/templates

COPY deploy/lua /etc/nginx/lua
COPY deploy/openapi.json /etc/nginx/openapi.json
COPY deploy/nginx.conf.template /etc/nginx/templates/nginx.conf.template
COPY deploy/gateway-entrypoint.sh /usr/local/bin/gateway-entrypoint
EXPOSE 8080 9106
ENTRYPOINT ["/usr/local/bin/gateway-entrypoint"]
