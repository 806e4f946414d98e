"""Running QEMU for the local bake and for ``factory verify qemu``.

- :mod:`factory.qemu.argv`: command lines as argv lists (machine, disks, user net, guestfwd, DMI);
- :mod:`factory.qemu.accel`: KVM or TCG, decided by a real test boot, cached per machine;
- :mod:`factory.qemu.process`: one QEMU process, stopped on every exit path;
- :mod:`factory.qemu.serial`: serial-log follower with progress lines, patterns and deadlines;
- :mod:`factory.qemu.seed`: NoCloud ``cidata`` seed ISOs;
- :mod:`factory.qemu.fileserver`: loopback HTTP server that hands the ISO to the guest.
"""
