#!/bin/sh
# The proxy function's handler: the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs
# this, waits for GET /ready on $PORT, then forwards each invocation to it and streams the answer back.
# chalicelib/gateway/serve.py takes these of uvicorn's options and runs uvicorn's server without its command line,
# with the modules loaded before the collector runs.
cd "${LAMBDA_TASK_ROOT:-$(dirname "$0")/../..}"
# The zip leaves out boto3 and botocore (infra/package.py): they are the runtime's. On python3.11 and later
# Lambda installs them in the interpreter's own site-packages (/var/lang/lib/python3.13/site-packages), which
# `python` searches whatever PYTHONPATH says; before 3.11 they were in $LAMBDA_RUNTIME_DIR (/var/runtime).
# So the path is named here, not inherited: the zip first, then the runtime directory, then what the
# environment adds (layers' /opt/python).
PYTHONPATH="$PWD${LAMBDA_RUNTIME_DIR:+:$LAMBDA_RUNTIME_DIR}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
exec python -m chalicelib.gateway.serve --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log --log-level warning \
  --timeout-graceful-shutdown 1 chalicelib.gateway.proxy_app:app
