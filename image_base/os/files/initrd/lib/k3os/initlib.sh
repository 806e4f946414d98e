# shellcheck shell=sh disable=SC2034 # the variables set here are read by /init
# Functions of the k3os-factory initrd, sourced by /init (and by the tests, under busybox sh, with
# K3OS_CONSOLE, K3OS_POWEROFF and K3OS_REBOOT pointing at harmless stand-ins).

: "${K3OS_CONSOLE:=/dev/console}"
: "${K3OS_POWEROFF:=poweroff -f}"
: "${K3OS_REBOOT:=reboot -f}"

# Top-level entries of the state filesystem that survive a takeover.
K3OS_KEEP_TOP="boot k3os lost+found"
# Entries of a real (not symlinked) /sbin that survive a takeover: what boots k3OS from the old loader.
K3OS_KEEP_SBIN="init k3os k3os-init"

k3os_log() {
    echo "k3os-init: $*" >"$K3OS_CONSOLE" 2>/dev/null || echo "k3os-init: $*"
}

# parse_cmdline FILE: set K3OS_MODE, K3OS_STATE_LABEL, K3OS_GROWPART and K3OS_INSTALL_ARGS
# (the k3os.install.* keys as key=value words) from a kernel command line.
parse_cmdline() {
    K3OS_MODE=""
    K3OS_STATE_LABEL="K3OS_STATE"
    K3OS_GROWPART="true"
    K3OS_INSTALL_ARGS=""
    # shellcheck disable=SC2013 # word splitting is the point: the cmdline is space separated
    for word in $(cat "$1"); do
        case "$word" in
            k3os.mode=*) K3OS_MODE="${word#k3os.mode=}" ;;
            k3os.state_label=*) K3OS_STATE_LABEL="${word#k3os.state_label=}" ;;
            k3os.growpart=*) K3OS_GROWPART="${word#k3os.growpart=}" ;;
            k3os.install.*) K3OS_INSTALL_ARGS="$K3OS_INSTALL_ARGS ${word#k3os.install.}" ;;
        esac
    done
}

# choose_mode GIVEN STATE_DEVICE MEDIUM_DEVICE: print the boot mode. An explicit mode wins (an unknown
# one falls back to shell); else disk when a state filesystem exists, live when booted from the K3OS
# medium, shell otherwise.
choose_mode() {
    case "$1" in
        live | install | disk | shell)
            echo "$1"
            return 0
            ;;
        "") ;;
        *)
            k3os_log "unknown k3os.mode=$1, starting a shell"
            echo shell
            return 0
            ;;
    esac
    if [ -n "$2" ]; then
        echo disk
    elif [ -n "$3" ]; then
        echo live
    else
        echo shell
    fi
}

# takeover STATE_DIR: when STATE_DIR/k3os/system/takeover exists, delete the previous OS from the
# state filesystem, mark a factory reset, consume the markers and power off (poweroff marker) or reboot.
# Returns 1 (and does nothing) when there is no takeover marker.
takeover() {
    system="$1/k3os/system"
    [ -e "$system/takeover" ] || return 1
    k3os_log "takeover: removing the previous operating system from $1"
    touch "$system/factory-reset"
    # A merged-/usr distro has /sbin -> usr/sbin, which dies with usr: drop the link itself.
    [ -L "$1/sbin" ] && rm -f "$1/sbin"
    for entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        name="${entry##*/}"
        case " $K3OS_KEEP_TOP sbin " in
            *" $name "*) continue ;;
        esac
        rm -rf "$entry"
    done
    if [ -d "$1/sbin" ]; then
        for entry in "$1"/sbin/* "$1"/sbin/.[!.]*; do
            [ -e "$entry" ] || [ -L "$entry" ] || continue
            case " $K3OS_KEEP_SBIN " in
                *" ${entry##*/} "*) continue ;;
            esac
            rm -rf "$entry"
        done
        rmdir "$1/sbin" 2>/dev/null
    fi
    rm -f "$system/takeover"
    sync
    if [ -e "$system/poweroff" ]; then
        rm -f "$system/poweroff"
        sync
        k3os_log "takeover done, powering off"
        $K3OS_POWEROFF
    else
        k3os_log "takeover done, rebooting"
        $K3OS_REBOOT
    fi
    return 0
}

# factory_reset STATE_DIR: when the factory-reset marker exists, wipe the persistent data
# (k3os/data) so this boot starts like a new node, then consume the marker.
factory_reset() {
    [ -e "$1/k3os/system/factory-reset" ] || return 1
    k3os_log "factory reset: clearing $1/k3os/data"
    rm -rf "$1/k3os/data"
    rm -f "$1/k3os/system/factory-reset"
    return 0
}

# seed_data STATE_DIR ROOT: create STATE_DIR/k3os/data/{var,home,opt,usr-local} on first boot,
# seeded from ROOT's /var, /home, /opt and /usr/local.
seed_data() {
    for pair in var:var home:home opt:opt usr-local:usr/local; do
        data="$1/k3os/data/${pair%%:*}"
        [ -d "$data" ] && continue
        mkdir -p "$data"
        if [ -d "$2/${pair#*:}" ]; then
            cp -a "$2/${pair#*:}/." "$data/"
        fi
        k3os_log "created persistent ${pair#*:} on the state filesystem"
    done
}

# find_label LABEL: print the block device carrying filesystem label LABEL (empty if none).
find_label() {
    findfs "LABEL=$1" 2>/dev/null || true
}
