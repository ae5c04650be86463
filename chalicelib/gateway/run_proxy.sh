#!/bin/sh
# The proxy function's handler: the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs
# this, waits for GET /ready on $PORT, then forwards each invocation to it and streams the answer back.
# chalicelib/gateway/serve.py is uvicorn's own command line, with the modules loaded before the collector runs.
cd "${LAMBDA_TASK_ROOT:-$(dirname "$0")/../..}"
exec python -m chalicelib.gateway.serve --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log --log-level warning \
  --timeout-graceful-shutdown 1 chalicelib.gateway.proxy_app:app
