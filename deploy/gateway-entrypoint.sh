#!/bin/sh
# The compose gateway's start: render the mounted template from the GATEWAY_* variables
# (only those: every other $name in it is nginx's own), then become nginx.
set -eu
names=$(env | sed -n 's/^\(GATEWAY_[A-Z_]*\)=.*/${\1}/p' | tr '\n' ' ')
envsubst "$names" </etc/nginx/templates/nginx.conf.template >/etc/nginx/nginx.conf
exec nginx -p /etc/nginx/ -c /etc/nginx/nginx.conf -e stderr "$@"
