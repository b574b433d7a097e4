# shellcheck shell=bash
# integration/k8s/proc.sh — sourced by control-plane.sh and nodes.sh: starting the daemons
# they leave running. Expects the caller's `die`.

# start_detached PIDFILE LOGFILE CMD...: CMD in its own session (it survives the script and
# the caller's process group), stdin from /dev/null, output appended to LOGFILE, its real pid
# in PIDFILE.
start_detached() {
  local pidfile=$1 logfile=$2; shift 2
  # fds 8/9 hold the callers' flocks: closed so the daemons don't keep the locks.
  # shellcheck disable=SC2016  # $$/$1/$@ are for the inner bash
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "$@" \
    </dev/null >>"$logfile" 2>&1 8>&- 9>&- &
  # Wait (briefly) for the pid file to appear.
  for _ in $(seq 50); do [[ -s $pidfile ]] && return 0; sleep 0.1; done
  die "could not start $*"
}
