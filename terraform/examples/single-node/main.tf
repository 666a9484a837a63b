# Example: one Strata node in an existing VPC/subnet.
#
#   cp terraform.tfvars.example terraform.tfvars   # and edit it
#   terraform init && terraform plan

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project = "strata"
    }
  }
}

module "strata" {
  source = "../../modules/strata-node"

  name      = var.name
  vpc_id    = var.vpc_id
  subnet_id = var.subnet_id

  # Only these networks reach the API (8080) and the reserved gRPC port (8081).
  allowed_cidrs = var.allowed_cidrs

  # SSH stays closed unless a key pair is named.
  ssh_key_name      = var.ssh_key_name
  ssh_allowed_cidrs = var.ssh_allowed_cidrs

  strata_binary_url    = var.strata_binary_url
  strata_binary_sha256 = var.strata_binary_sha256

  instance_type          = "m6i.large"
  data_volume_size_gb    = 200
  data_volume_iops       = 6000
  data_volume_throughput = 250

  strata_config_overrides = {
    "wal.max_bytes"     = "68719476736" # 64 GiB of the 200 GiB volume
    "wal.segment_bytes" = "134217728"   # 128 MiB segments
    "retention.default" = "72h"
    "log.level"         = "info"
  }

  tags = {
    Environment = "example"
  }
}
