# shellcheck shell=bash
# integration/k8s/proc.sh — sourced by control-plane.sh and nodes.sh: starting the daemons
# they leave running, and finding them again. Expects the caller's `die`.

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

# live_pid PIDFILE EXPECT: the pid in PIDFILE if that process is alive and its cmdline (or,
# while it execs, its executable) contains EXPECT: never signal a process we did not start.
# A process in the middle of execve reads an empty cmdline until the new program's arguments
# are set up, which under load lasts long enough to be seen: a just-started kube-scheduler
# was judged "exited during startup" in CI, and left running. So an empty read is read
# again, and the executable it is becoming counts; a zombie stays empty and is dead. (The
# cmdline goes into a variable, not `| grep -q`, which can fail a pipe under pipefail.)
live_pid() {
  local file=$1 expect=$2 pid cmdline exe try
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  for try in $(seq 20); do
    [[ -r /proc/$pid/cmdline ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ -n $cmdline ]] && break
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || exe=
    [[ -n $exe && $exe == *"$expect"* ]] && break
    ((try < 20)) && sleep 0.05
  done
  [[ $cmdline == *"$expect"* || ( -n ${exe:-} && $exe == *"$expect"* ) ]] || return 1
  echo "$pid"
}
