# googlecompute: the `factory bake gcp` flow as a Packer template (Packer 1.6.6 or newer).
#
# The googlecompute builder cannot wait for a guest that powers itself off: after provisioning it
# deletes the instance (keeping the boot disk) and creates the image at once, and its only wait
# (startup-script-status in metadata) needs a script that is still running at the end, which a
# takeover is not. So this template:
#   * passes the builder userdata as the `user-data` metadata key (cloud-init on Ubuntu runs it),
#   * uses no communicator, and
#   * runs a shell-local provisioner (scripts/wait-for-poweroff.sh) that polls
#     `gcloud compute instances describe` until the instance is TERMINATED (the guest's poweroff)
#     and fails after timeout_minutes. Only then does Packer delete the instance and create the image
#     from the disk the takeover left. The old k3OS GCP template never powered off and snapshotted
#     after a fixed pause instead.
# Needs the gcloud CLI, authenticated for project_id, on the machine running Packer.

variable "project_id" {
  type        = string
  description = "GCP project of the builder and the image (required; or env PKR_VAR_project_id)."
}

variable "zone" {
  type        = string
  default     = "us-central1-a"
  description = "Zone of the builder instance."
}

variable "arch" {
  type        = string
  default     = "amd64"
  description = "amd64 or arm64: picks the default machine type and Ubuntu image family."
}

variable "machine_type" {
  type        = string
  default     = ""
  description = "Builder machine type; empty means e2-small (amd64) or t2a-standard-1 (arm64), like the bake."
}

variable "source_image_family" {
  type        = string
  default     = ""
  description = "Ubuntu image family of the builder; empty means ubuntu-2404-lts-amd64 / -arm64."
}

variable "source_image_project" {
  type        = string
  default     = "ubuntu-os-cloud"
  description = "Project of source_image_family."
}

variable "disk_size_gb" {
  type        = number
  default     = 10
  description = "Boot disk size in GB (the image's minimum disk size)."
}

variable "image_family" {
  type        = string
  default     = ""
  description = "Image family of the result (optional)."
}

variable "image_storage_locations" {
  type        = list(string)
  default     = []
  description = "Where the image is stored (e.g. [\"us\"]); empty means the zone's multi-region."
}

variable "image_kms_key_name" {
  type        = string
  default     = ""
  description = "Cloud KMS key (projects/.../cryptoKeys/...) that encrypts the image; empty means Google-managed."
}

variable "network" {
  type        = string
  default     = ""
  description = "Network of the builder; empty means `default`."
}

variable "omit_external_ip" {
  type        = bool
  default     = false
  description = "Give the builder no public IP (it then needs Cloud NAT to download the ISO)."
}

variable "subnetwork" {
  type        = string
  default     = ""
  description = "Subnetwork of the builder (custom-mode networks)."
}

locals {
  image_name    = var.image_name != "" ? var.image_name : "k3os-gcp-${local.timestamp}"
  machine_type  = var.machine_type != "" ? var.machine_type : (var.arch == "arm64" ? "t2a-standard-1" : "e2-small")
  source_family = var.source_image_family != "" ? var.source_image_family : "ubuntu-2404-lts-${var.arch}"
  # GCE names and label keys/values: lowercase letters, digits, '-' and '_' (no ':').
  instance_name = "k3os-builder-${substr(local.bake_id, 0, 8)}"
  bake_labels = {
    "k3os-factory-bake-id" = local.bake_id
    "k3os-factory-k3os"    = lower(replace(var.k3os_version, ".", "-"))
    "k3os-factory-packer"  = "gcp"
  }
  instance_labels = merge(var.tags, local.bake_labels)
  image_labels    = merge(var.tags, local.bake_labels, { "k3os-factory-state" = "complete" })
  kms_keys        = var.image_kms_key_name != "" ? [var.image_kms_key_name] : []
}

source "googlecompute" "k3os" {
  project_id              = var.project_id
  zone                    = var.zone
  machine_type            = local.machine_type
  source_image_family     = local.source_family
  source_image_project_id = [var.source_image_project]
  disk_size               = var.disk_size_gb
  network                 = var.network
  subnetwork              = var.subnetwork
  omit_external_ip        = var.omit_external_ip
  use_internal_ip         = var.omit_external_ip
  instance_name           = local.instance_name
  labels                  = local.instance_labels

  communicator   = "none"
  metadata       = { serial-port-enable = "TRUE" }
  metadata_files = { user-data = var.userdata_file }

  image_name              = local.image_name
  image_family            = var.image_family
  image_description       = "k3OS ${var.k3os_version} baked by k3os-factory (packer)"
  image_labels            = local.image_labels
  image_storage_locations = var.image_storage_locations
  dynamic "image_encryption_key" {
    for_each = local.kms_keys
    content {
      kmsKeyName = image_encryption_key.value
    }
  }
}

build {
  sources = ["source.googlecompute.k3os"]

  # The wait for the guest's own poweroff (see the header). Runs on the Packer host.
  provisioner "shell-local" {
    script = "${path.root}/../scripts/wait-for-poweroff.sh"
    environment_vars = [
      "WAIT_CLOUD=gcp",
      "WAIT_INSTANCE=${local.instance_name}",
      "WAIT_GCP_PROJECT=${var.project_id}",
      "WAIT_GCP_ZONE=${var.zone}",
      "WAIT_TIMEOUT_SECONDS=${var.timeout_minutes * 60}",
      "WAIT_POLL_SECONDS=${var.poll_interval_seconds}",
    ]
    timeout = "${var.timeout_minutes + 5}m"
  }

  post-processor "manifest" {
    output = var.manifest_output
    custom_data = {
      bake_id      = local.bake_id
      cloud        = "gcp"
      image_name   = local.image_name
      iso_sha256   = var.iso_sha256
      iso_url      = var.iso_url
      k3os_version = var.k3os_version
      machine_type = local.machine_type
      zone         = var.zone
      packer       = "true"
    }
  }
}
