# ---------------------------------------------------------------------------
# Identity and placement
# ---------------------------------------------------------------------------

variable "name" {
  description = "Name of this Strata node. Used as the EC2 Name tag, as Strata's node_id, and as the prefix of every resource name (including the S3 bucket, so it must be a valid bucket-name prefix)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and '-', starting and ending with a letter or digit (it prefixes the S3 bucket name)."
  }
}

variable "vpc_id" {
  description = "ID of the VPC the node runs in. Must be the VPC of subnet_id."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "subnet_id" {
  description = "ID of the subnet for the instance. The data volume is created in this subnet's availability zone. A private subnet (with a NAT gateway or an S3 gateway endpoint for the binary download) is recommended."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]+$", var.subnet_id))
    error_message = "subnet_id must look like subnet-0123456789abcdef0."
  }
}

variable "instance_type" {
  description = "EC2 instance type. Use a Nitro type (m6i, m7i, m7g, ...) for NVMe-attached EBS and predictable fsync latency; its architecture must match var.architecture and the Strata binary."
  type        = string
  default     = "m6i.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like m6i.large."
  }
}

variable "architecture" {
  description = "CPU architecture of the instance type and of the Strata binary: x86_64 or arm64. Selects the default Amazon Linux 2023 AMI when ami_id is null."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "ami_id" {
  description = "AMI for the instance. null (the default) uses the latest Amazon Linux 2023 AMI for var.architecture at creation time; later AMI releases do not replace the instance. Any other AMI must run systemd and cloud-init and provide curl, blkid and mkfs.xfs or mkfs.ext4 (and the aws CLI when the binary comes from S3)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must be null or look like ami-0123456789abcdef0."
  }
}

variable "associate_public_ip_address" {
  description = "Whether the instance gets a public IPv4 address. Off by default: Strata's API has no authentication, so keep it reachable only inside the network (the security group applies either way)."
  type        = bool
  default     = false
}

variable "root_volume_size_gb" {
  description = "Size of the (encrypted gp3) root volume in GiB. Strata keeps no data on it."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 1024 && floor(var.root_volume_size_gb) == var.root_volume_size_gb
    error_message = "root_volume_size_gb must be a whole number between 8 and 1024."
  }
}

# ---------------------------------------------------------------------------
# Data volume (WAL + metadata store)
# ---------------------------------------------------------------------------

variable "data_volume_size_gb" {
  description = "Size in GiB of the dedicated gp3 EBS volume holding Strata's data_dir (write-ahead log and metadata store). Keep wal.max_bytes well below it."
  type        = number
  default     = 100

  validation {
    condition     = var.data_volume_size_gb >= 10 && var.data_volume_size_gb <= 16384 && floor(var.data_volume_size_gb) == var.data_volume_size_gb
    error_message = "data_volume_size_gb must be a whole number between 10 and 16384."
  }
}

variable "data_volume_iops" {
  description = "Provisioned IOPS of the gp3 data volume (3000 is the free baseline). Each WAL group commit is one write plus one fdatasync, so IOPS bounds commit rate and latency. At most 500 IOPS per GiB."
  type        = number
  default     = 3000

  validation {
    condition     = var.data_volume_iops >= 3000 && var.data_volume_iops <= 16000 && floor(var.data_volume_iops) == var.data_volume_iops
    error_message = "data_volume_iops must be a whole number between 3000 and 16000 (gp3 limits)."
  }
}

variable "data_volume_throughput" {
  description = "Provisioned throughput of the gp3 data volume in MiB/s (125 is the free baseline). At most IOPS / 4."
  type        = number
  default     = 125

  validation {
    condition     = var.data_volume_throughput >= 125 && var.data_volume_throughput <= 1000 && floor(var.data_volume_throughput) == var.data_volume_throughput
    error_message = "data_volume_throughput must be a whole number between 125 and 1000 MiB/s (gp3 limits)."
  }
}

# ---------------------------------------------------------------------------
# Network access
# ---------------------------------------------------------------------------

variable "allowed_cidrs" {
  description = "CIDR blocks (IPv4 or IPv6) allowed to reach Strata's HTTP API and metrics (TCP 8080) and the reserved gRPC port (TCP 8081). There is no default: Strata's API is unauthenticated, so choose the clients' networks explicitly. 0.0.0.0/0 and ::/0 are rejected."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0
    error_message = "allowed_cidrs must list at least one CIDR block."
  }

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0)) && try(cidrsubnet(c, 0, 0) == c, false)])
    error_message = "Every allowed_cidrs entry must be a canonical CIDR block such as 10.0.0.0/16 (network address, no host bits set)."
  }

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "allowed_cidrs must not contain 0.0.0.0/0 or ::/0: Strata's API has no authentication. Put a load balancer or proxy in front if it must be public."
  }
}

variable "ssh_key_name" {
  description = "Name of an existing EC2 key pair. null (the default) disables SSH: no key is installed and port 22 stays closed."
  type        = string
  default     = null
}

variable "ssh_allowed_cidrs" {
  description = "CIDR blocks allowed to reach TCP 22. Only used when ssh_key_name is set, and then it must not be empty. 0.0.0.0/0 and ::/0 are rejected."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_allowed_cidrs : can(cidrhost(c, 0)) && try(cidrsubnet(c, 0, 0) == c, false)])
    error_message = "Every ssh_allowed_cidrs entry must be a canonical CIDR block such as 203.0.113.7/32."
  }

  validation {
    condition     = alltrue([for c in var.ssh_allowed_cidrs : !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "ssh_allowed_cidrs must not contain 0.0.0.0/0 or ::/0."
  }
}

# ---------------------------------------------------------------------------
# The Strata binary
# ---------------------------------------------------------------------------

variable "strata_binary_url" {
  description = "HTTPS URL of the Linux `strata` executable (not an archive) for var.architecture. Set exactly one of strata_binary_url and strata_binary_s3_bucket/strata_binary_s3_key. Fetched once per instance at boot, so a presigned URL only needs to live until the instance has started."
  type        = string
  default     = null

  validation {
    condition     = var.strata_binary_url == null || can(regex("^https://[^\\s']+$", var.strata_binary_url))
    error_message = "strata_binary_url must be an https:// URL without whitespace or single quotes."
  }
}

variable "strata_binary_s3_bucket" {
  description = "Name of an existing S3 bucket holding the `strata` executable (alternative to strata_binary_url; set together with strata_binary_s3_key). The instance role gets s3:GetObject on that one object only."
  type        = string
  default     = null

  validation {
    condition     = var.strata_binary_s3_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.strata_binary_s3_bucket))
    error_message = "strata_binary_s3_bucket must be a valid S3 bucket name."
  }
}

variable "strata_binary_s3_key" {
  description = "Object key of the `strata` executable in strata_binary_s3_bucket, e.g. releases/0.1.0/x86_64/strata."
  type        = string
  default     = null

  validation {
    condition     = var.strata_binary_s3_key == null || can(regex("^[^\\s'*]+$", var.strata_binary_s3_key))
    error_message = "strata_binary_s3_key must be non-empty and contain no whitespace, single quotes or '*'."
  }
}

variable "strata_binary_sha256" {
  description = "Lowercase hex SHA-256 of the `strata` executable. Required: the boot script refuses to install a binary that does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.strata_binary_sha256))
    error_message = "strata_binary_sha256 must be 64 lowercase hex characters (sha256sum output)."
  }
}

# ---------------------------------------------------------------------------
# Strata configuration and service
# ---------------------------------------------------------------------------

variable "strata_config_overrides" {
  description = "Extra keys for /etc/strata/strata.toml, by dotted path as in config/strata.example.toml, e.g. { \"wal.max_bytes\" = \"34359738368\", \"log.level\" = \"info\", \"retention.default\" = \"7days\" }. Values are written as TOML integers/booleans when they look like one and the key is numeric, else as strings. data_dir, http.addr and grpc.addr are managed by the module (mount point and security group) and cannot be overridden; node_id defaults to var.name and log.format to json."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.strata_config_overrides) : can(regex("^[a-z_]+(\\.[a-z_]+)?$", k))])
    error_message = "strata_config_overrides keys must be key paths such as \"node_id\" or \"wal.max_bytes\" (lowercase letters and '_', at most one '.')."
  }

  validation {
    condition     = length(setintersection(keys(var.strata_config_overrides), ["data_dir", "http.addr", "grpc.addr"])) == 0
    error_message = "strata_config_overrides must not set data_dir, http.addr or grpc.addr: the module ties them to the data volume mount and the security group ports."
  }
}

variable "shutdown_timeout_seconds" {
  description = "systemd TimeoutStopSec for strata.service: how long a graceful shutdown (SIGTERM: finish in-flight appends, end long polls, sync the WAL) may take before SIGKILL. Keep it above limits.max_wait_ms and wal.append_timeout_ms."
  type        = number
  default     = 90

  validation {
    condition     = var.shutdown_timeout_seconds >= 15 && var.shutdown_timeout_seconds <= 900 && floor(var.shutdown_timeout_seconds) == var.shutdown_timeout_seconds
    error_message = "shutdown_timeout_seconds must be a whole number between 15 and 900."
  }
}

# ---------------------------------------------------------------------------
# Object storage and tagging
# ---------------------------------------------------------------------------

variable "bucket_force_destroy" {
  description = "Whether `terraform destroy` may delete the object-storage bucket while it still holds objects. Keep false outside throwaway environments."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource the module creates."
  type        = map(string)
  default     = {}
}
