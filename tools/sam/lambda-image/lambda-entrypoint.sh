#!/bin/sh
# The entry-point contract of AWS's public.ecr.aws/lambda/python images: the handler is the one
# argument (the image's CMD); inside Lambda (AWS_LAMBDA_RUNTIME_API set) the runtime bootstrap runs
# directly, elsewhere under the Runtime Interface Emulator, which serves the invoke API on :8080.
if [ $# -ne 1 ]; then
    echo "entrypoint requires the handler name to be the first argument" 1>&2
    exit 142
fi
export _HANDLER="$1"

RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
    exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
    exec $RUNTIME_ENTRYPOINT
fi
