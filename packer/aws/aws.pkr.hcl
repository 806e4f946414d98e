# amazon-ebs: the `factory bake aws` flow as a Packer template (Packer 1.6.6 or newer).
#
# No communicator: the builder userdata (from `factory packer render aws`) downloads the ISO, runs
# install.sh --takeover --poweroff and forces a reboot; k3OS takes the root disk over and powers the
# instance off. With disable_stop_instance Packer sends no StopInstances and only waits until the
# instance is `stopped` (aws_polling sizes that wait: timeout_minutes at poll_interval_seconds), then
# creates the AMI from the stopped root volume, copies, encrypts, shares and tags it.
# shutdown_behavior = "stop" keeps the root volume when the guest powers off (terminate would delete it).

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Build region (`factory bake aws --region`; the bake defaults to the boto3 chain's region)."
}

variable "arch" {
  type        = string
  default     = "amd64"
  description = "amd64 or arm64 (`--arch`): picks the Ubuntu AMI and the default instance type."
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "Builder instance type; empty means t3.small (amd64) or t4g.small (arm64), like the bake."
}

variable "source_ami" {
  type        = string
  default     = ""
  description = "Builder AMI; empty means the newest Canonical Ubuntu 24.04 LTS for arch."
}

variable "source_ami_name" {
  type        = string
  default     = ""
  description = "Name filter for the Canonical AMI when source_ami is empty; empty means Ubuntu 24.04 for arch."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the builder (`--subnet-id`); empty means the default VPC."
}

variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Regions to copy the AMI to (`--copy-to-regions`)."
}

variable "ami_users" {
  type        = list(string)
  default     = []
  description = "Account ids allowed to launch the AMI (`--share-with`)."
}

variable "snapshot_users" {
  type        = list(string)
  default     = []
  description = "Account ids allowed to create volumes from the snapshots (the bake shares both)."
}

variable "ami_groups" {
  type        = list(string)
  default     = []
  description = "[\"all\"] makes the AMI public (`--public`)."
}

variable "encrypt_boot" {
  type        = bool
  default     = false
  description = "Encrypt the AMI's snapshots (`--encrypt`)."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for encrypt_boot (`--kms-key-id`); empty means the account's default EBS key."
}

locals {
  image_name    = var.image_name != "" ? var.image_name : "k3os-aws-${local.timestamp}"
  instance_type = var.instance_type != "" ? var.instance_type : (var.arch == "arm64" ? "t4g.small" : "t3.small")
  ubuntu_arch   = var.arch == "arm64" ? "arm64" : "amd64"
  ec2_arch      = var.arch == "arm64" ? "arm64" : "x86_64"
  ami_name_glob = var.source_ami_name != "" ? var.source_ami_name : "ubuntu/images/*/ubuntu-noble-24.04-${local.ubuntu_arch}-server-*"
  # Either the given AMI or the newest match of the filter (both at once would AND them).
  ami_filters = var.source_ami != "" ? [] : [local.ami_name_glob]
  bake_tags = {
    "Name"                 = local.image_name
    "k3os-factory:bake-id" = local.bake_id
    "k3os-factory:created" = local.created
    "k3os-factory:k3os"    = var.k3os_version
    "k3os-factory:packer"  = "aws"
  }
  # The builder instance carries no state tag, so `factory gc aws` finds it if Packer is killed.
  run_tags   = merge(var.tags, local.bake_tags, { "Name" = "${local.image_name}-builder" })
  image_tags = merge(var.tags, local.bake_tags, { "k3os-factory:state" = "complete" })
}

source "amazon-ebs" "k3os" {
  region        = var.region
  instance_type = local.instance_type
  subnet_id     = var.subnet_id
  source_ami    = var.source_ami
  dynamic "source_ami_filter" {
    for_each = local.ami_filters
    content {
      filters = {
        name                = source_ami_filter.value
        architecture        = local.ec2_arch
        root-device-type    = "ebs"
        virtualization-type = "hvm"
      }
      owners      = ["099720109477"]
      most_recent = true
    }
  }

  communicator          = "none"
  user_data_file        = var.userdata_file
  shutdown_behavior     = "stop"
  disable_stop_instance = true
  aws_polling {
    delay_seconds = var.poll_interval_seconds
    max_attempts  = ceil(var.timeout_minutes * 60 / var.poll_interval_seconds)
  }

  ami_name        = local.image_name
  ami_description = "k3OS ${var.k3os_version} baked by k3os-factory (packer)"
  ena_support     = true
  ami_regions     = var.ami_regions
  ami_users       = var.ami_users
  ami_groups      = var.ami_groups
  snapshot_users  = var.snapshot_users
  encrypt_boot    = var.encrypt_boot
  kms_key_id      = var.kms_key_id

  run_tags        = local.run_tags
  run_volume_tags = local.run_tags
  tags            = local.image_tags
  snapshot_tags   = local.image_tags
}

build {
  sources = ["source.amazon-ebs.k3os"]

  post-processor "manifest" {
    output = var.manifest_output
    custom_data = {
      bake_id       = local.bake_id
      cloud         = "aws"
      image_name    = local.image_name
      iso_sha256    = var.iso_sha256
      iso_url       = var.iso_url
      k3os_version  = var.k3os_version
      instance_type = local.instance_type
      region        = var.region
      packer        = "true"
    }
  }
}
