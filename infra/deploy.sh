#!/usr/bin/env bash
# make deploy STAGE=dev: check → package → upload code → CloudFormation deploy → dashboard to S3 → print the URLs.
# Needs AWS credentials, the AWS CLI, and TOLLGATE_DEPLOY_BUCKET (an S3 bucket for code packages, in the stack's
# region). `python -m infra.preflight` checks all of it first and says, one line each, what is missing and how
# to fix it. Optional: TOLLGATE_SLACK_WEBHOOK_PARAMETER (SSM name of the Slack URL), TOLLGATE_ALERT_WEBHOOK_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE="${STAGE:-dev}"
STACK="tollgate-${STAGE}"
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="dist/package-${STAGE}"

command -v aws >/dev/null || { echo "error: the AWS CLI is missing: install v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)" >&2; exit 2; }
command -v npm >/dev/null || { echo "error: npm is missing (the dashboard bundles Chart.js from npm): install Node.js 18 or later" >&2; exit 2; }

echo "==> checking stage ${STAGE}, the account and its secrets"
CHECKED="$("$PYTHON" -m infra.preflight --stage "$STAGE")"
eval "$CHECKED"  # REGION, ACCOUNT, API_GATEWAY_ACCOUNT_ROLE, DASHBOARD_URL (each shell-quoted)
export AWS_DEFAULT_REGION="$REGION" AWS_REGION="$REGION"

echo "==> packaging stage ${STAGE}"
"$PYTHON" -m infra.package --stage "$STAGE" --out "$OUT"
aws cloudformation package --template-file "$OUT/sam.json" \
  --s3-bucket "$TOLLGATE_DEPLOY_BUCKET" --s3-prefix "$STACK" \
  --output-template-file "$OUT/packaged.yaml"

deploy() {
  aws cloudformation deploy --template-file "$OUT/packaged.yaml" --stack-name "$STACK" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
    --parameter-overrides "Stage=${STAGE}" \
      "SlackWebhookParameterName=${TOLLGATE_SLACK_WEBHOOK_PARAMETER:-}" \
      "AlertWebhookUrl=${TOLLGATE_ALERT_WEBHOOK_URL:-}" \
      "DashboardUrl=$1" "ApiGatewayAccountRole=${API_GATEWAY_ACCOUNT_ROLE}"
}
output() {
  aws cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

echo "==> deploying stack ${STACK} in ${REGION} (account ${ACCOUNT})"
deploy "$DASHBOARD_URL"
if [ -z "$DASHBOARD_URL" ]; then
  # The functions link the dashboard in alerts but must not wait on CloudFront for its name: on the first
  # deploy they get it from this second, short update (environment only).
  DASHBOARD_URL="$(output DashboardURL)"
  echo "==> telling the functions the dashboard's URL (${DASHBOARD_URL})"
  deploy "$DASHBOARD_URL"
fi
API_URL="$(output EndpointURL)"
DASHBOARD_BUCKET="$(output DashboardBucketName)"

echo "==> uploading the dashboard (it reads /api on its own origin: CloudFront routes /api/* to the API)"
"$PYTHON" -m local.build_dashboard --out "dist/dashboard-${STAGE}"
aws s3 sync "dist/dashboard-${STAGE}" "s3://${DASHBOARD_BUCKET}" --delete
aws cloudfront create-invalidation --distribution-id "$(output DashboardDistributionId)" --paths "/*" >/dev/null

TOPIC="$(output AlertsTopicArn)"
echo
echo "API:        ${API_URL}"
echo "Dashboard:  ${DASHBOARD_URL}/"
echo "Alerts SNS: ${TOPIC}"
CONFIRMED="$(aws sns list-subscriptions-by-topic --topic-arn "$TOPIC" \
  --query "length(Subscriptions[?SubscriptionArn!='PendingConfirmation'])" --output text)"
if [ "$CONFIRMED" = "0" ]; then
  echo "warning: nobody receives the alarms and alerts yet: aws sns subscribe --topic-arn ${TOPIC} --protocol email --notification-endpoint you@example.com" >&2
fi
