# Shared helpers for tests/security/: the e2e helpers, plus running a
# command as `nobody` (an unprivileged local user of the host).
. "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
# The e2e work directory is 0700; an attack by another local user needs a
# path that user could walk, as /var/lib is.
chmod 755 "$WORK"
# Through env: setpriv keeps root's capabilities until its own execve, so a
# path it executes directly would be resolved with CAP_DAC_OVERRIDE.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all /usr/bin/env "$@"; }
# A setuid-root payload: tini-static prints the effective uid of what it
# runs. "Uid: r e s f" of /proc/self/status; euid is the second field.
euid_via() { as_nobody "$1" -s -- /bin/grep Uid /proc/self/status 2>/dev/null | awk '{print $3}'; }
