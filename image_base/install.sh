#!/bin/bash
# install.sh - install k3OS from its ISO onto a disk, or prepare a running machine for takeover.
#
#   install.sh [--force-efi] [--debug] [--tty TTY] [--poweroff] [--takeover] [--no-format]
#              [--config URL|PATH] DEVICE ISO_URL|ISO_PATH
#
# Without --no-format DEVICE is a whole disk (or disk image file): it is partitioned, formatted
# (state partition labelled K3OS_STATE) and made bootable with grub-install. With --no-format DEVICE
# is an existing ext2/3/4 filesystem (usually the running root): it is relabelled K3OS_STATE and used
# in place. --takeover and --poweroff only leave marker files; the takeover happens on the next boot,
# and this script never reboots by itself (the caller does). See docs/installer.md.
#
# Environment (operators and tests):
#   K3OS_INSTALL_TARGET_DIR   test hook: install into this directory; DEVICE is not touched at all
#   K3OS_INSTALL_RETRIES      download attempts (default 5)
#   K3OS_INSTALL_RETRY_DELAY  seconds before the first retry, doubled after each (default 2)
set -euo pipefail

readonly PROG=install.sh
readonly STATE_LABEL=K3OS_STATE
readonly ESP_LABEL=K3OS_GRUB

FORCE_EFI=0 DEBUG=0 TTY="" POWEROFF=0 TAKEOVER=0 NO_FORMAT=0 CONFIG="" DEVICE="" ISO=""
TARGET_DIR_HOOK=${K3OS_INSTALL_TARGET_DIR:-}
RETRIES=${K3OS_INSTALL_RETRIES:-5}
RETRY_DELAY=${K3OS_INSTALL_RETRY_DELAY:-2}
WORK="" TARGET="" ISO_DIR="" STATE_DEV="" ESP_DEV="" GRUB_DISK="" ESP_MOUNTED=1
MOUNTS=() LOOPS=()

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}
usage_error() {
    printf '%s: %s\nusage: %s [--force-efi] [--debug] [--tty TTY] [--poweroff] [--takeover] [--no-format] [--config URL|PATH] DEVICE ISO_URL|ISO_PATH\n' \
        "$PROG" "$1" "$PROG" >&2
    exit 2
}
have() { command -v "$1" >/dev/null 2>&1; }
is_url() { [[ $1 =~ ^(https?|ftp)://[^[:space:]]+$ ]]; }
redact() { printf '%s' "${1%%\?*}"; } # drop query strings (pre-signed URLs carry credentials there)

cleanup() {
    local rc=$? i
    set +e
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null
    done
    for ((i = ${#LOOPS[@]} - 1; i >= 0; i--)); do
        losetup -d "${LOOPS[i]}" 2>/dev/null
    done
    if [[ -n $WORK ]]; then rm -rf -- "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

parse_args() {
    local positional=()
    while (($#)); do
        case $1 in
        --force-efi) FORCE_EFI=1 ;;
        --debug) DEBUG=1 ;;
        --poweroff) POWEROFF=1 ;;
        --takeover) TAKEOVER=1 ;;
        --no-format) NO_FORMAT=1 ;;
        --tty | --config)
            (($# >= 2)) || usage_error "$1 needs a value"
            if [[ $1 == --tty ]]; then TTY=$2; else CONFIG=$2; fi
            shift
            ;;
        --tty=*) TTY=${1#*=} ;;
        --config=*) CONFIG=${1#*=} ;;
        -h | --help)
            printf 'usage: %s [--force-efi] [--debug] [--tty TTY] [--poweroff] [--takeover] [--no-format] [--config URL|PATH] DEVICE ISO_URL|ISO_PATH\nSee docs/installer.md.\n' "$PROG"
            exit 0
            ;;
        --) shift && positional+=("$@") && break ;;
        -*) usage_error "unknown option: $1" ;;
        *) positional+=("$1") ;;
        esac
        shift
    done
    ((${#positional[@]} == 2)) || usage_error "expected DEVICE and ISO, got ${#positional[@]} argument(s)"
    DEVICE=${positional[0]} ISO=${positional[1]}
    # The tty ends up on the kernel command line in grub.cfg: letters and digits only (ttyS0, hvc0),
    # optionally with serial settings (ttyS0,115200n8).
    if [[ -n $TTY && ! $TTY =~ ^[A-Za-z][A-Za-z0-9]*(,[0-9]+[noe]?[5-8]?)?$ ]]; then
        usage_error "--tty: not a tty name: $TTY"
    fi
    [[ $RETRIES =~ ^[1-9][0-9]*$ ]] || usage_error "K3OS_INSTALL_RETRIES must be a positive integer"
    [[ $RETRY_DELAY =~ ^[0-9]+$ ]] || usage_error "K3OS_INSTALL_RETRY_DELAY must be a whole number"
}

want_efi() { ((FORCE_EFI)) || [[ -d /sys/firmware/efi ]]; }

# Name every missing tool at once, before anything is downloaded, mounted or written.
check_tools() {
    local tools=(cp mkdir mktemp chmod mv touch sync) missing=() t
    if is_url "$ISO" || is_url "$CONFIG"; then
        have curl || have wget || missing+=("curl-or-wget")
    fi
    if ! have mount && ! have xorriso && ! have bsdtar; then missing+=("mount-or-xorriso-or-bsdtar"); fi
    if [[ -z $TARGET_DIR_HOOK ]]; then
        tools+=(mount umount)
        if ((NO_FORMAT)); then
            tools+=(blkid tune2fs findmnt sed)
        else
            tools+=(parted mkfs.ext4 grub-install losetup lsblk)
            if want_efi; then tools+=(mkfs.vfat); fi
        fi
    fi
    for t in "${tools[@]}"; do have "$t" || missing+=("$t"); done
    ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (nothing was changed)"
}

fetch_once() {
    if have curl; then
        curl -fsSL --connect-timeout 30 -o "$2" "$1"
    else
        wget -q -T 30 -O "$2" "$1"
    fi
}

# download URL DEST: retried with exponential backoff.
download() {
    local url=$1 dest=$2 attempt=1 delay=$RETRY_DELAY
    while ! fetch_once "$url" "$dest"; do
        ((attempt < RETRIES)) || die "download failed after $attempt attempt(s): $(redact "$url")"
        log "download attempt $attempt of $RETRIES failed: $(redact "$url"); retrying in ${delay}s"
        sleep "$delay"
        attempt=$((attempt + 1)) delay=$((delay * 2))
    done
}

# Mount the ISO read-only; when mounting is impossible (no loop devices, no privileges), extract /k3os.
open_iso() {
    local iso=$ISO
    if is_url "$ISO"; then
        iso=$WORK/k3os.iso
        log "downloading ISO from $(redact "$ISO")"
        download "$ISO" "$iso"
    fi
    [[ -f $iso || -b $iso ]] || die "ISO not found: $iso"
    ISO_DIR=$WORK/iso
    mkdir -p "$ISO_DIR"
    local opts=ro
    if [[ -f $iso ]]; then opts=loop,ro; fi
    if have mount && mount -o "$opts" "$iso" "$ISO_DIR" 2>/dev/null; then
        MOUNTS+=("$ISO_DIR")
    elif have xorriso; then
        log "cannot mount the ISO; extracting /k3os with xorriso"
        xorriso -osirrox on -indev "$iso" -extract /k3os "$ISO_DIR/k3os" >/dev/null 2>&1 ||
            die "cannot read /k3os from $iso with xorriso: not a k3OS ISO, or a damaged one"
    elif have bsdtar; then
        log "cannot mount the ISO; extracting /k3os with bsdtar"
        bsdtar -xf "$iso" -C "$ISO_DIR" k3os ||
            die "cannot read /k3os from $iso with bsdtar: not a k3OS ISO, or a damaged one"
    else
        die "cannot mount $iso and neither xorriso nor bsdtar is installed"
    fi
    [[ -d $ISO_DIR/k3os/system ]] || die "$iso has no /k3os/system: not a k3OS ISO"
}

# partition_dev N: the device node of partition N of DEVICE. Uses the kernel's node when it shows
# up, else a loop device over the partition's byte range (image files, loop devices without
# partition scanning).
partition_dev() {
    local n=$1 candidate line num start size
    if [[ -b $DEVICE ]]; then
        partx -u "$DEVICE" >/dev/null 2>&1 || blockdev --rereadpt "$DEVICE" >/dev/null 2>&1 || true
        for candidate in "$DEVICE$n" "${DEVICE}p$n"; do
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                [[ -b $candidate ]] && printf '%s\n' "$candidate" && return 0
                sleep 0.2
            done
        done
    fi
    while IFS=: read -r num start _ size _; do
        [[ $num == "$n" ]] || continue
        line=$(losetup -f --show -o "${start%B}" --sizelimit "${size%B}" "$DEVICE") ||
            die "cannot attach partition $n of $DEVICE"
        printf '%s\n' "$line"
        return 0
    done < <(parted -s -m "$DEVICE" unit B print)
    die "partition $n of $DEVICE not found"
}

attach_loop() { # attach_loop DEV_VAR NODE: set DEV_VAR, remember a loop device for cleanup
    if [[ $2 == /dev/loop* && $2 != "$DEVICE" ]]; then LOOPS+=("$2"); fi
    printf -v "$1" '%s' "$2"
}

format_disk() {
    if [[ -b $DEVICE ]] && lsblk -nro MOUNTPOINT "$DEVICE" | grep -q .; then
        die "$DEVICE (or one of its partitions) is mounted; use --no-format to install over a running system"
    fi
    local dev
    if want_efi; then
        log "partitioning $DEVICE: gpt, EFI system partition + $STATE_LABEL"
        parted -s "$DEVICE" mklabel gpt mkpart efi fat32 1MiB 101MiB set 1 esp on \
            mkpart state ext4 101MiB 100%
        dev=$(partition_dev 1)
        attach_loop ESP_DEV "$dev"
        dev=$(partition_dev 2)
        attach_loop STATE_DEV "$dev"
        mkfs.vfat -F 32 -n "$ESP_LABEL" "$ESP_DEV" >/dev/null
    else
        log "partitioning $DEVICE: msdos, one $STATE_LABEL partition"
        parted -s "$DEVICE" mklabel msdos mkpart primary ext4 1MiB 100% set 1 boot on
        dev=$(partition_dev 1)
        attach_loop STATE_DEV "$dev"
    fi
    mkfs.ext4 -q -F -L "$STATE_LABEL" "$STATE_DEV"
    TARGET=$WORK/target
    mkdir -p "$TARGET"
    mount "$STATE_DEV" "$TARGET"
    MOUNTS+=("$TARGET")
    if [[ -n $ESP_DEV ]]; then
        mkdir -p "$TARGET/boot/efi"
        if mount "$ESP_DEV" "$TARGET/boot/efi" 2>/dev/null; then
            MOUNTS+=("$TARGET/boot/efi")
        else
            ESP_MOUNTED=0 # e.g. a kernel without vfat: install_grub writes the ESP with mtools
        fi
    fi
    GRUB_DISK=$DEVICE
    if [[ -f $DEVICE ]]; then
        GRUB_DISK=$(losetup -f --show "$DEVICE") || die "cannot attach $DEVICE for grub-install"
        LOOPS+=("$GRUB_DISK")
    fi
}

# With --no-format: relabel the existing filesystem and use it where it is.
prepare_in_place() {
    [[ -b $DEVICE || -f $DEVICE ]] || die "$DEVICE: no such block device or image file"
    local fstype
    fstype=$(blkid -o value -s TYPE "$DEVICE" || true)
    [[ $fstype == ext[234] ]] ||
        die "$DEVICE has a ${fstype:-unknown} filesystem; --no-format needs ext2/3/4 to relabel it $STATE_LABEL"
    log "relabelling $DEVICE ($fstype) as $STATE_LABEL"
    tune2fs -L "$STATE_LABEL" "$DEVICE" >/dev/null
    if [[ -b $DEVICE && "$(findmnt -n -o MAJ:MIN /)" == "$(device_majmin "$DEVICE")" ]]; then
        TARGET=/
        return 0
    fi
    TARGET=$WORK/target
    mkdir -p "$TARGET"
    local opts=rw
    if [[ -f $DEVICE ]]; then opts=loop,rw; fi
    mount -o "$opts" "$DEVICE" "$TARGET" || die "cannot mount $DEVICE"
    MOUNTS+=("$TARGET")
}

# Kernels that mount the root without an initramfs report it as /dev/root, which has no device
# node; find the real one through the root's major:minor.
resolve_root_alias() {
    local majmin name
    [[ "$(findmnt -n -o SOURCE /)" == "$DEVICE" ]] || return 0
    majmin=$(findmnt -n -o MAJ:MIN /)
    name=$(sed -n 's/^DEVNAME=//p' "/sys/dev/block/${majmin// /}/uevent" 2>/dev/null || true)
    if [[ -n $name && -b /dev/$name ]]; then
        log "$DEVICE is the mounted root: using /dev/$name"
        DEVICE=/dev/$name
    fi
}

device_majmin() { printf '%d:%d' "0x$(stat -L -c %t "$1")" "0x$(stat -L -c %T "$1")"; }

copy_system() {
    local system=$TARGET/k3os/system
    log "copying /k3os/system from the ISO"
    mkdir -p "$system"
    # Old "current" links would make cp descend into the previous version; replace them.
    rm -f "$system/kernel/current" "$system/k3os/current"
    # Without --config, a config already on the target (a re-install) wins over the ISO's.
    local kept=""
    if [[ -z $CONFIG && -f $system/config.yaml ]]; then
        kept=$WORK/kept-config.yaml
        cp -p "$system/config.yaml" "$kept"
    fi
    cp -a "$ISO_DIR/k3os/system/." "$system/"
    if [[ -n $kept ]]; then cp -p "$kept" "$system/config.yaml"; fi
    chmod -R u+w "$system" # ISO trees are read-only; later runs and the node must write here
}

write_config() {
    local dest=$TARGET/k3os/system/config.yaml src
    [[ -n $CONFIG || -e $dest ]] || return 0
    if [[ -n $CONFIG ]]; then
        src=$CONFIG
        if is_url "$CONFIG"; then
            log "downloading config from $(redact "$CONFIG")"
            src=$WORK/config.yaml
            download "$CONFIG" "$src"
        fi
        [[ -f $src ]] || die "config not found: $src"
        log "writing k3os/system/config.yaml (mode 0600)"
        (umask 077 && cat -- "$src" >"$dest.tmp")
        mv -f -- "$dest.tmp" "$dest"
    fi
    chmod 0600 "$dest"
}

write_grub_cfg() {
    local cfg=$TARGET/boot/grub/grub.cfg console="console=tty1" serial="" speed=115200
    if [[ -n $TTY ]]; then
        if [[ $TTY =~ ,([0-9]+) ]]; then speed=${BASH_REMATCH[1]}; fi
        if [[ $TTY == *,* ]]; then console+=" console=$TTY"; else console+=" console=$TTY,115200n8"; fi
        if [[ $TTY =~ ^ttyS([0-9]+) ]]; then
            serial="serial --unit=${BASH_REMATCH[1]} --speed=$speed
terminal_input serial console
terminal_output serial console"
        fi
    fi
    local kernel=/k3os/system/kernel/current
    log "writing boot/grub/grub.cfg${TTY:+ (serial console $TTY)}"
    mkdir -p "${cfg%/*}"
    cat >"$cfg.tmp" <<EOF
# Written by k3os-factory install.sh. Boots k3OS from the partition labelled $STATE_LABEL.
set default=0
set timeout=3
$serial
search --no-floppy --set=root --label $STATE_LABEL

menuentry "k3OS" {
  search --no-floppy --set=root --label $STATE_LABEL
  linux $kernel/vmlinuz k3os.mode=disk $console
  initrd $kernel/initrd
}

menuentry "k3OS rescue shell" {
  search --no-floppy --set=root --label $STATE_LABEL
  linux $kernel/vmlinuz k3os.mode=shell $console
  initrd $kernel/initrd
}

menuentry "k3OS recovery (live from an attached K3OS ISO, state untouched)" {
  search --no-floppy --set=root --label $STATE_LABEL
  linux $kernel/vmlinuz k3os.mode=live $console
  initrd $kernel/initrd
}
EOF
    mv -f "$cfg.tmp" "$cfg"
}

install_grub() {
    if ((NO_FORMAT)) || [[ -n $TARGET_DIR_HOOK ]]; then return 0; fi
    if [[ -n $ESP_DEV ]] && ((!ESP_MOUNTED)); then
        install_grub_efi_unmounted
    elif [[ -n $ESP_DEV ]]; then
        log "grub-install (EFI) on $DEVICE"
        grub-install --target=x86_64-efi --efi-directory="$TARGET/boot/efi" \
            --boot-directory="$TARGET/boot" --removable --no-nvram \
            --modules="part_msdos part_gpt ext2 fat" "$GRUB_DISK"
    else
        log "grub-install (BIOS) on $DEVICE"
        # The modules are named because grub-probe cannot see the partition table through a loop
        # device over one partition (image files); core.img then finds /boot/grub by filesystem UUID.
        grub-install --target=i386-pc --boot-directory="$TARGET/boot" \
            --modules="part_msdos part_gpt ext2" "$GRUB_DISK"
    fi
}

# The ESP cannot be mounted (no vfat in this kernel): build a standalone GRUB EFI binary whose
# embedded config finds K3OS_STATE and loads its grub.cfg, and copy it in with mtools.
install_grub_efi_unmounted() {
    if ! have grub-mkstandalone || ! have mcopy || ! have mmd; then
        die "cannot mount the EFI system partition and grub-mkstandalone or mtools (mcopy, mmd) is missing"
    fi
    log "cannot mount the EFI system partition: writing a standalone GRUB EFI image with mtools"
    # shellcheck disable=SC2016 # $root is GRUB's variable, written literally
    printf 'search --no-floppy --set=root --label %s\nset prefix=($root)/boot/grub\nconfigfile ($root)/boot/grub/grub.cfg\n' \
        "$STATE_LABEL" >"$WORK/early.cfg"
    grub-mkstandalone -O x86_64-efi -o "$WORK/BOOTX64.EFI" "boot/grub/grub.cfg=$WORK/early.cfg"
    # mtools warns about disk geometry on loop devices; a real failure still ends the install.
    if ! MTOOLS_SKIP_CHECK=1 mmd -i "$ESP_DEV" ::/EFI ::/EFI/BOOT 2>/dev/null ||
        ! MTOOLS_SKIP_CHECK=1 mcopy -i "$ESP_DEV" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI 2>/dev/null; then
        die "mtools could not write the EFI system partition $ESP_DEV"
    fi
}

main() {
    parse_args "$@"
    if ((DEBUG)); then set -x; fi
    check_tools
    if [[ -z $TARGET_DIR_HOOK ]]; then
        if ((NO_FORMAT)) && [[ ! -e $DEVICE ]]; then resolve_root_alias; fi
        [[ -e $DEVICE ]] || die "$DEVICE: no such device"
    fi
    if [[ -n $CONFIG ]] && ! is_url "$CONFIG"; then
        [[ -f $CONFIG ]] || die "config not found: $CONFIG"
    fi
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/k3os-install.XXXXXX")
    open_iso
    if [[ -n $TARGET_DIR_HOOK ]]; then
        log "test hook: installing into directory $TARGET_DIR_HOOK; $DEVICE is not touched"
        TARGET=$TARGET_DIR_HOOK
        mkdir -p "$TARGET"
    elif ((NO_FORMAT)); then
        prepare_in_place
    else
        format_disk
    fi
    copy_system
    write_config
    write_grub_cfg
    install_grub
    local system=$TARGET/k3os/system
    if ((TAKEOVER)); then
        touch "$system/takeover"
        log "takeover marker written: the takeover runs on the next boot"
        if ((POWEROFF)); then
            touch "$system/poweroff"
            log "poweroff marker written: the machine powers off after the takeover"
        fi
    elif ((POWEROFF)); then
        log "--poweroff without --takeover: nothing to mark (the caller decides what happens next)"
    fi
    sync
    log "done: k3OS installed on $DEVICE; reboot to continue"
}

main "$@"
