# hcloud: the `factory bake hetzner` flow as a Packer template (Packer 1.6.6 or newer).
#
# No communicator; the builder userdata (from `factory packer render hetzner`) does the work and
# the guest powers itself off after the takeover. The hcloud builder has no wait for a guest
# poweroff: after provisioning it asks for a graceful (ACPI) shutdown, waits for that action only,
# and snapshots. So a shell-local provisioner (scripts/wait-for-poweroff.sh) first polls
# `hcloud server describe` until the server is `off` (failing after timeout_minutes); the
# builder's shutdown request then meets a server that is already off, and the snapshot is taken
# from the disk the takeover left. snapshot_labels is a map (the old k3OS template passed a list of
# maps, a shape the plugin does not document). Packer 1.6.6's hcloud builder cannot label the
# builder server itself, only the snapshot.
# Needs the hcloud CLI with a context or HCLOUD_TOKEN on the Packer host; the builder reads
# HCLOUD_TOKEN (or the hcloud_token variable).

variable "hcloud_token" {
  type        = string
  default     = ""
  sensitive   = true
  description = "API token; empty means the HCLOUD_TOKEN environment variable."
}

variable "location" {
  type        = string
  default     = "fsn1"
  description = "Location of the builder (the snapshot is usable in every location)."
}

variable "arch" {
  type        = string
  default     = "amd64"
  description = "amd64 or arm64: picks the default server type."
}

variable "server_type" {
  type        = string
  default     = ""
  description = "Builder server type; empty means cx22 (amd64) or cax11 (arm64), like the bake."
}

variable "ssh_keys" {
  type        = list(string)
  default     = []
  description = "Existing project SSH keys put on the builder, to debug it (the bake's --ssh-key)."
}

variable "source_image" {
  type        = string
  default     = "ubuntu-24.04"
  description = "Image the builder boots."
}

locals {
  image_name  = var.image_name != "" ? var.image_name : "k3os-hetzner-${local.timestamp}"
  server_name = "k3os-builder-${substr(local.bake_id, 0, 8)}"
  server_type = var.server_type != "" ? var.server_type : (var.arch == "arm64" ? "cax11" : "cx22")
  # Hetzner label keys take an optional DNS-style prefix with '/'; ':' is not allowed.
  snapshot_labels = merge(var.tags, {
    "k3os-factory/bake-id" = local.bake_id
    "k3os-factory/k3os"    = replace(var.k3os_version, "+", "_")
    "k3os-factory/packer"  = "hetzner"
    "k3os-factory/state"   = "complete"
  })
}

source "hcloud" "k3os" {
  token       = var.hcloud_token
  location    = var.location
  server_type = local.server_type
  ssh_keys    = var.ssh_keys
  image       = var.source_image
  server_name = local.server_name

  communicator   = "none"
  user_data_file = var.userdata_file

  snapshot_name   = local.image_name
  snapshot_labels = local.snapshot_labels
}

build {
  sources = ["source.hcloud.k3os"]

  # The wait for the guest's own poweroff (see the header). Runs on the Packer host.
  provisioner "shell-local" {
    script = "${path.root}/../scripts/wait-for-poweroff.sh"
    environment_vars = [
      "WAIT_CLOUD=hetzner",
      "WAIT_INSTANCE=${local.server_name}",
      "WAIT_TIMEOUT_SECONDS=${var.timeout_minutes * 60}",
      "WAIT_POLL_SECONDS=${var.poll_interval_seconds}",
    ]
    timeout = "${var.timeout_minutes + 5}m"
  }

  post-processor "manifest" {
    output = var.manifest_output
    custom_data = {
      bake_id      = local.bake_id
      cloud        = "hetzner"
      image_name   = local.image_name
      iso_sha256   = var.iso_sha256
      iso_url      = var.iso_url
      k3os_version = var.k3os_version
      server_type  = local.server_type
      location     = var.location
      packer       = "true"
    }
  }
}
