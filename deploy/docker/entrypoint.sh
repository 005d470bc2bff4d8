#!/bin/sh
# The image's entry point. With a command (`python -m services.posts`, `python -m tillit migrate`) it runs
# that; without one it runs the service named by SERVICE, the gateway by default. `exec` makes the service
# PID 1, so it receives SIGTERM itself and shuts down gracefully.
set -e
if [ "$#" -eq 0 ]; then
    set -- python -m "services.${SERVICE:-gateway}"
fi
exec "$@"
