# Variables shared by every k3os-factory template (symlinked into each cloud's directory).
#
# The builder userdata is NOT written here: `factory packer render CLOUD` renders it with the same
# code as `factory bake` (image_base.builder.render_builder_userdata) and passes its path as
# `userdata_file`. iso_url, iso_sha256, config_file and k3os_version are baked into that userdata;
# the templates only record them (tags/labels and the manifest's custom_data), so change them by
# rendering again, not by editing this file.

variable "userdata_file" {
  type        = string
  description = "Builder userdata rendered by `factory packer render` (required)."
}

variable "iso_url" {
  type        = string
  default     = ""
  description = "k3OS ISO the builder downloads (recorded; it is inside userdata_file)."
}

variable "iso_sha256" {
  type        = string
  default     = ""
  description = "sha256 of the ISO (recorded; the builder checks it)."
}

variable "k3os_version" {
  type        = string
  default     = "unknown"
  description = "k3OS version of the ISO, recorded in tags/labels and the manifest."
}

variable "config_file" {
  type        = string
  default     = ""
  description = "k3OS config baked into /k3os/system/config.yaml (recorded; it is inside userdata_file)."
}

variable "image_name" {
  type        = string
  default     = ""
  description = "Image name; empty means k3os-CLOUD-YYYYMMDD-hhmmss (UTC), like `factory bake`."
}

variable "bake_id" {
  type        = string
  default     = ""
  description = "Value of the k3os-factory bake-id tag/label; empty means a fresh UUID."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Extra tags (AWS, OpenStack properties) or labels (GCP, Hetzner) on the image."
}

variable "timeout_minutes" {
  type        = number
  default     = 60
  description = "How long to wait for the builder to install k3OS, take over and power off."
}

variable "poll_interval_seconds" {
  type        = number
  default     = 15
  description = "Seconds between status polls while waiting for the power-off."
}

variable "manifest_output" {
  type        = string
  default     = "factory-manifest.json"
  description = "Manifest file (Packer's manifest shape, the same file `factory bake` appends to)."
}

locals {
  bake_id   = var.bake_id != "" ? var.bake_id : uuidv4()
  created   = timestamp()
  timestamp = formatdate("YYYYMMDD-hhmmss", local.created)
}
