# openstack: the `factory bake openstack` flow as a Packer template (Packer 1.6.6 or newer).
#
# No communicator; the builder userdata (from `factory packer render openstack`) does the work and
# the guest powers itself off after the takeover. The openstack builder's own stop step does stop a
# server and treats "already stopped" (HTTP 409) as success, but it runs right after provisioning,
# so on its own it would stop the builder in the middle of the install. A shell-local provisioner
# (scripts/wait-for-poweroff.sh) therefore polls `openstack server show` until the server is
# SHUTOFF (failing at ERROR or after timeout_minutes) before the builder stops it and saves the
# image. Nova may report SHUTOFF up to its power-state sync interval (default 10 min) late.
# Needs the openstack CLI and the usual OS_* credentials (or OS_CLOUD) on the Packer host; note
# that this builder authenticates already in `packer validate`.

variable "flavor" {
  type        = string
  default     = "m1.small"
  description = "Builder flavor."
}

variable "source_image_name" {
  type        = string
  default     = "Ubuntu 24.04"
  description = "Name of the Ubuntu image the builder boots (newest match)."
}

variable "source_image" {
  type        = string
  default     = ""
  description = "Builder image id; overrides source_image_name."
}

variable "networks" {
  type        = list(string)
  default     = []
  description = "Network ids of the builder (needed where the project has several)."
}

variable "availability_zone" {
  type        = string
  default     = ""
  description = "Availability zone of the builder."
}

variable "image_visibility" {
  type        = string
  default     = "private"
  description = "Glance visibility of the image: private, shared, community or public."
}

variable "image_members" {
  type        = list(string)
  default     = []
  description = "Project ids the image is shared with (needs image_visibility = shared)."
}

variable "use_blockstorage_volume" {
  type        = bool
  default     = false
  description = "Boot the builder from a Cinder volume (clouds without local disks)."
}

variable "volume_size" {
  type        = number
  default     = 10
  description = "Size in GB of the Cinder volume when use_blockstorage_volume is set."
}

locals {
  image_name    = var.image_name != "" ? var.image_name : "k3os-openstack-${local.timestamp}"
  instance_name = "k3os-builder-${substr(local.bake_id, 0, 8)}"
  bake_props = {
    "k3os-factory:bake-id" = local.bake_id
    "k3os-factory:created" = local.created
    "k3os-factory:k3os"    = var.k3os_version
    "k3os-factory:packer"  = "openstack"
  }
  image_filters = var.source_image != "" ? [] : [var.source_image_name]
}

source "openstack" "k3os" {
  flavor            = var.flavor
  source_image      = var.source_image
  networks          = var.networks
  availability_zone = var.availability_zone
  instance_name     = local.instance_name
  instance_metadata = merge(var.tags, local.bake_props)
  dynamic "source_image_filter" {
    for_each = local.image_filters
    content {
      filters {
        name = source_image_filter.value
      }
      most_recent = true
    }
  }
  use_blockstorage_volume = var.use_blockstorage_volume
  volume_size             = var.use_blockstorage_volume ? var.volume_size : 0

  communicator   = "none"
  user_data_file = var.userdata_file

  image_name       = local.image_name
  image_visibility = var.image_visibility
  image_members    = var.image_members
  image_tags       = ["k3os", "k3os-factory"]
  metadata         = merge(var.tags, local.bake_props, { "k3os-factory:state" = "complete" })
}

build {
  sources = ["source.openstack.k3os"]

  # The wait for the guest's own poweroff (see the header). Runs on the Packer host.
  provisioner "shell-local" {
    script = "${path.root}/../scripts/wait-for-poweroff.sh"
    environment_vars = [
      "WAIT_CLOUD=openstack",
      "WAIT_INSTANCE=${local.instance_name}",
      "WAIT_TIMEOUT_SECONDS=${var.timeout_minutes * 60}",
      "WAIT_POLL_SECONDS=${var.poll_interval_seconds}",
    ]
    timeout = "${var.timeout_minutes + 5}m"
  }

  post-processor "manifest" {
    output = var.manifest_output
    custom_data = {
      bake_id      = local.bake_id
      cloud        = "openstack"
      image_name   = local.image_name
      iso_sha256   = var.iso_sha256
      iso_url      = var.iso_url
      k3os_version = var.k3os_version
      flavor       = var.flavor
      packer       = "true"
    }
  }
}
