"""The OS inside the ISO: rootfs recipe, initrd, init/boot scripts and the ISO builder."""
