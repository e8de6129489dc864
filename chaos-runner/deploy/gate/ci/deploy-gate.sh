#!/bin/sh
# A CI step in front of a deploy: asks the error-budget gate and stops the pipeline unless
# the decision is proceed. Extra arguments go to `chaos-runner gate` (e.g. --slo NAME).
#
#   PROMETHEUS_URL=http://prometheus:9090 deploy-gate.sh experiments/slo/game-services.yaml --slo matchmaking-success
#
# Environment: PROMETHEUS_URL (required); PROMETHEUS_TOKEN, a bearer token, if Prometheus
# wants one (passed by variable name, never on the command line); CHAOS_RUNNER, the binary
# (default: chaos-runner on PATH).
set -u
if [ $# -lt 1 ]; then
    echo "usage: deploy-gate.sh SLOFILE [chaos-runner gate flags...]" >&2
    exit 3
fi
if [ -z "${PROMETHEUS_URL:-}" ]; then
    echo "deploy gate: PROMETHEUS_URL is not set" >&2
    exit 3
fi
slo_file=$1
shift
if [ -n "${PROMETHEUS_TOKEN:-}" ]; then
    set -- --prometheus-token-env PROMETHEUS_TOKEN "$@"
fi
"${CHAOS_RUNNER:-chaos-runner}" gate "$slo_file" --prometheus "$PROMETHEUS_URL" "$@"
code=$?
case $code in
    0) echo "deploy gate: proceed" >&2 ;;
    1) echo "deploy gate: pause: hold this deploy until the error budget recovers" >&2 ;;
    2) echo "deploy gate: rollback: roll the running change back before deploying" >&2 ;;
    3) echo "deploy gate: invalid input: fix the SLO file or the flags" >&2 ;;
    4) echo "deploy gate: unknown: Prometheus unreachable or no data; holding (fail closed)" >&2 ;;
    *) echo "deploy gate: unexpected exit $code; holding" >&2 ;;
esac
exit $code
