#!/bin/sh
# Wait until a cloud builder has powered itself off after the k3OS takeover.
#
# Run by the shell-local provisioner of the gcp, openstack and hetzner templates (on the Packer
# host), because those Packer builders have no "wait for the guest to stop" of their own. Polls the
# cloud's CLI every WAIT_POLL_SECONDS until the instance reports its powered-off state:
#   gcp        gcloud compute instances describe NAME  -> TERMINATED
#   openstack  openstack server show NAME               -> SHUTOFF   (ERROR fails at once)
#   hetzner    hcloud server describe NAME              -> off
# Exits 0 when it is off; 1 after WAIT_TIMEOUT_SECONDS, after WAIT_MAX_ERRORS CLI failures in a
# row, or when the instance is in a failed state; 2 for a missing setting or CLI. Packer then
# cleans up (deletes the instance) as for any failed provisioner.
#
# Environment: WAIT_CLOUD, WAIT_INSTANCE, WAIT_TIMEOUT_SECONDS (default 3600),
# WAIT_POLL_SECONDS (default 15), WAIT_MAX_ERRORS (default 5), WAIT_GCP_PROJECT, WAIT_GCP_ZONE.
set -u

cloud=${WAIT_CLOUD:-}
name=${WAIT_INSTANCE:-}
timeout=${WAIT_TIMEOUT_SECONDS:-3600}
poll=${WAIT_POLL_SECONDS:-15}
max_errors=${WAIT_MAX_ERRORS:-5}

say() { printf 'wait-for-poweroff: %s\n' "$*"; }
die() { code=$1; shift; say "$*" >&2; exit "$code"; }

[ -n "$name" ] || die 2 "WAIT_INSTANCE is not set"
case $timeout$poll$max_errors in *[!0-9]*) die 2 "WAIT_TIMEOUT_SECONDS, WAIT_POLL_SECONDS and WAIT_MAX_ERRORS must be whole numbers";; esac
[ "$poll" -gt 0 ] || die 2 "WAIT_POLL_SECONDS must be > 0"

case $cloud in
  gcp)
    cli=gcloud; off=TERMINATED; failed=""
    if [ -z "${WAIT_GCP_PROJECT:-}" ] || [ -z "${WAIT_GCP_ZONE:-}" ]; then
      die 2 "WAIT_GCP_PROJECT and WAIT_GCP_ZONE must be set"
    fi
    ;;
  openstack) cli=openstack; off=SHUTOFF; failed=ERROR ;;
  hetzner) cli=hcloud; off=off; failed="" ;;
  *) die 2 "WAIT_CLOUD must be gcp, openstack or hetzner (got '$cloud')" ;;
esac
command -v "$cli" >/dev/null 2>&1 || die 2 "the $cli CLI is not installed; it is needed to see the $cloud builder power off"

status_of() {
  case $cloud in
    gcp) gcloud compute instances describe "$name" --project "$WAIT_GCP_PROJECT" --zone "$WAIT_GCP_ZONE" --format 'value(status)' ;;
    openstack) openstack server show "$name" -f value -c status ;;
    hetzner) hcloud server describe "$name" -o 'format={{.Status}}' ;;
  esac
}

errfile=$(mktemp) || die 2 "cannot create a temporary file"
trap 'rm -f "$errfile"' EXIT
start=$(date +%s)
deadline=$((start + timeout))
errors=0
last=""
say "waiting up to ${timeout}s for $cloud instance $name to power off ($cli, every ${poll}s)"
while :; do
  if status=$(status_of 2>"$errfile"); then
    errors=0
    status=$(printf '%s' "$status" | tr -d '[:space:]')
    if [ "$status" != "$last" ]; then
      say "$name is $status after $(($(date +%s) - start))s"
      last=$status
    fi
    [ "$status" = "$off" ] && exit 0
    if [ -n "$failed" ] && [ "$status" = "$failed" ]; then
      die 1 "$name is in state $status; giving up"
    fi
  else
    errors=$((errors + 1))
    say "$cli failed ($errors/$max_errors): $(tail -n 1 "$errfile")"
    if [ "$errors" -ge "$max_errors" ]; then
      die 1 "$cli failed $errors times in a row; giving up"
    fi
  fi
  now=$(date +%s)
  if [ "$now" -ge "$deadline" ]; then
    die 1 "$name did not power off within ${timeout}s (last state: ${last:-unknown}); check its serial console"
  fi
  left=$((deadline - now))
  if [ "$left" -lt "$poll" ]; then sleep "$left"; else sleep "$poll"; fi
done
