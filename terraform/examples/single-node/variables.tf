variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name of the Strata node (also its node_id and the prefix of its resource names)."
  type        = string
  default     = "strata-example"
}

variable "vpc_id" {
  description = "Existing VPC to deploy into."
  type        = string
}

variable "subnet_id" {
  description = "Existing subnet (in vpc_id) for the instance; private with NAT or an S3 endpoint is recommended."
  type        = string
}

variable "allowed_cidrs" {
  description = "Client networks allowed to reach Strata on TCP 8080 and 8081. No default on purpose."
  type        = list(string)
}

variable "ssh_key_name" {
  description = "Existing EC2 key pair for SSH, or null to keep port 22 closed."
  type        = string
  default     = null
}

variable "ssh_allowed_cidrs" {
  description = "Networks allowed to reach TCP 22 when ssh_key_name is set."
  type        = list(string)
  default     = []
}

variable "strata_binary_url" {
  description = "HTTPS URL of the Linux x86_64 `strata` executable."
  type        = string
}

variable "strata_binary_sha256" {
  description = "SHA-256 (hex) of the executable at strata_binary_url."
  type        = string
}
