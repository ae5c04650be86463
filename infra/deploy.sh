#!/usr/bin/env bash
# make deploy STAGE=dev: check → package → upload code → SAM transform → CloudFormation deploy → dashboard to S3
# → print the URLs. tests/e2e/test_deploy_rehearsal.py runs this very script against a moto server.
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
aws cloudformation package --use-json --template-file "$OUT/sam.json" \
  --s3-bucket "$TOLLGATE_DEPLOY_BUCKET" --s3-prefix "$STACK" \
  --output-template-file "$OUT/packaged.json" >/dev/null
# The SAM transform CloudFormation would run, run here: the stack gets the plain template we can read and rehearse.
"$PYTHON" -m infra.sam_transform "$OUT/packaged.json" "$OUT/stack.json" \
  --region "$REGION" --account "$ACCOUNT" --stack "$STACK"

# A setting left unset keeps the stack's previous value (`aws cloudformation deploy` reuses it); set it, even
# to "", to change it.
SETTINGS=()
[ -n "${TOLLGATE_SLACK_WEBHOOK_PARAMETER+set}" ] && SETTINGS+=("SlackWebhookParameterName=${TOLLGATE_SLACK_WEBHOOK_PARAMETER}")
[ -n "${TOLLGATE_ALERT_WEBHOOK_URL+set}" ] && SETTINGS+=("AlertWebhookUrl=${TOLLGATE_ALERT_WEBHOOK_URL}")

deploy() {
  # The template is over CloudFormation's 51,200-byte limit for an inline body: it goes through the code bucket.
  aws cloudformation deploy --template-file "$OUT/stack.json" --stack-name "$STACK" \
    --s3-bucket "$TOLLGATE_DEPLOY_BUCKET" --s3-prefix "$STACK" \
    --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "Stage=${STAGE}" "DashboardUrl=$1" "ApiGatewayAccountRole=${API_GATEWAY_ACCOUNT_ROLE}" \
      ${SETTINGS[@]+"${SETTINGS[@]}"}
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
