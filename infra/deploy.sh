#!/usr/bin/env bash
# make deploy STAGE=dev: package → upload code → CloudFormation deploy → dashboard to S3 → print the URLs.
# Needs AWS credentials, the AWS CLI, and TOLLGATE_DEPLOY_BUCKET (an existing S3 bucket for code packages).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE="${STAGE:-dev}"
STACK="tollgate-${STAGE}"
PYTHON="${PYTHON:-.venv/bin/python}"
: "${TOLLGATE_DEPLOY_BUCKET:?set TOLLGATE_DEPLOY_BUCKET to an S3 bucket that holds the code packages}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$(aws configure get region || echo us-east-1)}"

echo "==> packaging stage ${STAGE}"
"$PYTHON" -m infra.package --stage "$STAGE" --out "dist/package-${STAGE}"
aws cloudformation package --template-file "dist/package-${STAGE}/sam.json" \
  --s3-bucket "$TOLLGATE_DEPLOY_BUCKET" --s3-prefix "$STACK" \
  --output-template-file "dist/package-${STAGE}/packaged.yaml"

echo "==> deploying stack ${STACK} in ${AWS_DEFAULT_REGION}"
aws cloudformation deploy --template-file "dist/package-${STAGE}/packaged.yaml" --stack-name "$STACK" \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
  --parameter-overrides "Stage=${STAGE}" \
    "SlackWebhookParameterName=${TOLLGATE_SLACK_WEBHOOK_PARAMETER:-}" \
    "AlertWebhookUrl=${TOLLGATE_ALERT_WEBHOOK_URL:-}"

output() {
  aws cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
API_URL="$(output EndpointURL)"
DASHBOARD_URL="$(output DashboardURL)"
DASHBOARD_BUCKET="$(output DashboardBucketName)"

echo "==> uploading the dashboard"
"$PYTHON" -m local.build_dashboard --api-url "$API_URL" --out "dist/dashboard-${STAGE}"
aws s3 sync "dist/dashboard-${STAGE}" "s3://${DASHBOARD_BUCKET}" --delete
aws cloudfront create-invalidation --distribution-id "$(output DashboardDistributionId)" --paths "/*" >/dev/null

echo
echo "API:        ${API_URL}"
echo "Dashboard:  ${DASHBOARD_URL}/"
echo "Alerts SNS: $(output AlertsTopicArn)"
