# qemu: the `factory bake qemu` flow as a Packer template (Packer 1.6.6 or newer).
#
# Starts from the local base disk (disk_image = true: the builder's iso_url is the *base disk*, not
# the k3OS ISO), attaches the NoCloud seed (user-data = the builder userdata rendered by
# `factory packer render qemu`, meta-data) as a CD labelled cidata, and serves the k3OS ISO from
# http_directory on a fixed port, which the guest reaches at http://10.0.2.2:PORT/ (QEMU user
# network). No communicator and no shutdown_command: Packer waits up to timeout_minutes for the
# guest to power itself off (builder -> forced reboot -> takeover -> poweroff), then converts the
# disk (compressed qcow2 by default). The serial console goes to serial_log.

variable "base_image" {
  type        = string
  default     = "dist/base.qcow2"
  description = "Base disk the builder boots (`factory base build`; `--base-image`)."
}

variable "base_image_checksum" {
  type        = string
  default     = "none"
  description = "Checksum of base_image as sha256:HEX (render fills it in), or none."
}

variable "base_image_format" {
  type        = string
  default     = "qcow2"
  description = "Format of base_image (render asks qemu-img); the backing format of the overlay."
}

variable "output_directory" {
  type        = string
  default     = "dist"
  description = "The image lands in OUTPUT_DIRECTORY/packer-IMAGE_NAME/IMAGE_NAME (`--output`)."
}

variable "format" {
  type        = string
  default     = "qcow2"
  description = "Image format: qcow2 (compressed) or raw (`--format`)."
}

variable "accelerator" {
  type        = string
  default     = "tcg"
  description = "kvm or tcg (`--accel`; render resolves auto with a real KVM probe). Not Packer's auto: /dev/kvm can open yet fail."
}

variable "memory" {
  type        = number
  default     = 1536
  description = "Builder memory in MiB (`--memory`)."
}

variable "cpus" {
  type        = number
  default     = 2
  description = "Builder vCPUs (`--cpus`)."
}

variable "disk_size" {
  type        = string
  default     = ""
  description = "Grow the disk to this size (e.g. 8192M); empty keeps the base disk's size."
}

variable "use_backing_file" {
  type        = bool
  default     = false
  description = "Start from an overlay on base_image instead of a full copy (the output is still a standalone image)."
}

variable "meta_data_file" {
  type        = string
  description = "NoCloud meta-data written by `factory packer render qemu` (userdata_file must be named user-data)."
}

variable "http_directory" {
  type        = string
  default     = ""
  description = "Directory served to the guest (holds k3os.iso when the ISO is local)."
}

variable "http_port" {
  type        = number
  default     = 8780
  description = "Port of the ISO server; the builder userdata's iso_url names it."
}

variable "serial_log" {
  type        = string
  default     = ""
  description = "File for the guest's serial console; empty means OUTPUT_DIRECTORY/logs/IMAGE_NAME.serial.log."
}

locals {
  image_name = var.image_name != "" ? var.image_name : "k3os-qemu-${local.timestamp}"
  serial_log = var.serial_log != "" ? var.serial_log : "${var.output_directory}/logs/${local.image_name}.serial.log"
  cpu_model  = var.accelerator == "kvm" ? "host" : "max"
}

source "qemu" "k3os" {
  disk_image       = true
  iso_url          = var.base_image
  iso_checksum     = var.base_image_checksum
  use_backing_file = var.use_backing_file
  # Packer 1.6.6 runs `qemu-img create -b BASE` without -F, which QEMU >= 6 refuses
  # ("Backing file specified without backing format"); name the format explicitly.
  qemu_img_args {
    create = var.use_backing_file ? ["-F", var.base_image_format] : []
  }
  skip_resize_disk = var.disk_size == ""
  disk_size        = var.disk_size == "" ? "4096M" : var.disk_size
  disk_interface   = "virtio"
  net_device       = "virtio-net"
  format           = var.format
  disk_compression = var.format == "qcow2"

  accelerator = var.accelerator
  memory      = var.memory
  cpus        = var.cpus
  headless    = true
  qemuargs = [
    ["-cpu", local.cpu_model],
    ["-serial", "file:${local.serial_log}"],
  ]

  cd_files = [var.userdata_file, var.meta_data_file]
  cd_label = "cidata"

  http_directory    = var.http_directory
  http_port_min     = var.http_port
  http_port_max     = var.http_port
  http_bind_address = "127.0.0.1"

  communicator     = "none"
  shutdown_timeout = "${var.timeout_minutes}m"

  output_directory = "${var.output_directory}/packer-${local.image_name}"
  vm_name          = "${local.image_name}.${var.format}"
}

build {
  sources = ["source.qemu.k3os"]

  post-processor "manifest" {
    output = var.manifest_output
    custom_data = {
      accel        = var.accelerator
      bake_id      = local.bake_id
      base_image   = var.base_image
      cloud        = "qemu"
      format       = var.format
      image_name   = local.image_name
      iso_sha256   = var.iso_sha256
      iso_url      = var.iso_url
      k3os_version = var.k3os_version
      packer       = "true"
    }
  }
}
