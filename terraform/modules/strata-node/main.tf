# One Strata node: EC2 instance + dedicated gp3 data volume + security group +
# instance profile, and the S3 bucket the tiered-storage feature will use.

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_subnet" "this" {
  id = var.subnet_id
}

# Latest Amazon Linux 2023 AMI, used when var.ami_id is null.
data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

locals {
  tags = merge(var.tags, {
    "strata:node" = var.name
    "ManagedBy"   = "terraform"
  })

  ami_id = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.al2023[0].insecure_value

  # Ports Strata listens on; the security group and the config agree on them.
  service_ports = {
    http = 8080 # HTTP/JSON API, /healthz and /metrics
    grpc = 8081 # RocketMQ 5 compatible gRPC API (reserved)
  }

  # The data volume is mounted here; data_dir is a subdirectory so that the
  # filesystem root (lost+found, mount point ownership) stays out of it.
  data_mount_point = "/var/lib/strata"
  data_dir         = "/var/lib/strata/data"
  data_device_name = "/dev/sdf"

  binary_from_s3 = var.strata_binary_s3_bucket != null && var.strata_binary_s3_key != null

  # ---- /etc/strata/strata.toml ---------------------------------------------
  managed_config = {
    "data_dir"  = local.data_dir
    "http.addr" = "0.0.0.0:${local.service_ports.http}"
    "grpc.addr" = "0.0.0.0:${local.service_ports.grpc}"
  }
  default_config = {
    "node_id"    = var.name
    "log.format" = "json"
  }
  config = merge(local.default_config, var.strata_config_overrides, local.managed_config)

  # Keys Strata types as strings; every other key is an integer.
  string_keys = ["data_dir", "node_id", "http.addr", "grpc.addr", "retention.default", "log.level", "log.format"]
  config_toml_values = {
    for k, v in local.config : k => (
      !contains(local.string_keys, k) && can(regex("^(-?[0-9]+|true|false)$", v)) ? v : jsonencode(v)
    )
  }
  config_root = { for k, v in local.config_toml_values : k => v if !strcontains(k, ".") }
  config_sections = {
    for s in distinct([for k in keys(local.config_toml_values) : split(".", k)[0] if strcontains(k, ".")]) :
    s => { for k, v in local.config_toml_values : split(".", k)[1] => v if startswith(k, "${s}.") }
  }

  strata_toml = templatefile("${path.module}/templates/strata.toml.tftpl", {
    root     = local.config_root
    sections = local.config_sections
  })

  user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    strata_toml              = local.strata_toml
    volume_serial            = replace(aws_ebs_volume.data.id, "-", "")
    device_name              = local.data_device_name
    xen_device_name          = replace(local.data_device_name, "/dev/sd", "/dev/xvd")
    mount_point              = local.data_mount_point
    data_dir                 = local.data_dir
    binary_url               = var.strata_binary_url == null ? "" : var.strata_binary_url
    binary_s3_uri            = local.binary_from_s3 ? "s3://${var.strata_binary_s3_bucket}/${var.strata_binary_s3_key}" : ""
    binary_sha256            = var.strata_binary_sha256
    aws_region               = data.aws_region.current.name
    health_url               = "http://127.0.0.1:${local.service_ports.http}/healthz"
    shutdown_timeout_seconds = var.shutdown_timeout_seconds
  })
}

# ---------------------------------------------------------------------------
# Security group: 8080/8081 from allowed_cidrs, 22 only with an SSH key.
# ---------------------------------------------------------------------------

resource "aws_security_group" "this" {
  name_prefix = "${var.name}-"
  description = "Strata node ${var.name}: API ${local.service_ports.http}, gRPC ${local.service_ports.grpc}"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "service" {
  for_each = {
    for pair in setproduct(keys(local.service_ports), var.allowed_cidrs) :
    "${pair[0]} ${pair[1]}" => { port = local.service_ports[pair[0]], cidr = pair[1], service = pair[0] }
  }

  security_group_id = aws_security_group.this.id
  description       = "Strata ${each.value.service} from ${each.value.cidr}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = strcontains(each.value.cidr, ":") ? null : each.value.cidr
  cidr_ipv6         = strcontains(each.value.cidr, ":") ? each.value.cidr : null
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = var.ssh_key_name == null ? toset([]) : toset(var.ssh_allowed_cidrs)

  security_group_id = aws_security_group.this.id
  description       = "SSH from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "all_ipv4" {
  security_group_id = aws_security_group.this.id
  description       = "All outbound IPv4 (package mirrors, binary download, S3)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "all_ipv6" {
  security_group_id = aws_security_group.this.id
  description       = "All outbound IPv6"
  ip_protocol       = "-1"
  cidr_ipv6         = "::/0"
  tags              = local.tags
}

# ---------------------------------------------------------------------------
# Object storage bucket (tiered storage). Private, encrypted, unversioned.
# ---------------------------------------------------------------------------

resource "aws_s3_bucket" "this" {
  bucket_prefix = "${var.name}-"
  force_destroy = var.bucket_force_destroy
  tags          = merge(local.tags, { Name = "${var.name}-objects" })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    # Strata writes immutable, uniquely named objects and deletes them by
    # retention; versioning would only keep deleted data (and cost) around.
    status = "Disabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "bucket_tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket_tls_only.json

  # Applying a policy while the public access block is being created races.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# ---------------------------------------------------------------------------
# IAM: the instance may use its own bucket and nothing else (plus reading the
# one binary object when it is delivered from S3).
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name_prefix        = "${var.name}-"
  description        = "Strata node ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

data "aws_iam_policy_document" "node" {
  statement {
    sid       = "ListOwnBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }

  statement {
    sid       = "ReadWriteOwnObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.this.arn}/*"]
  }

  dynamic "statement" {
    for_each = local.binary_from_s3 ? [1] : []

    content {
      sid       = "ReadStrataBinary"
      actions   = ["s3:GetObject"]
      resources = ["arn:${data.aws_partition.current.partition}:s3:::${var.strata_binary_s3_bucket}/${var.strata_binary_s3_key}"]
    }
  }
}

resource "aws_iam_role_policy" "node" {
  name_prefix = "strata-node-"
  role        = aws_iam_role.this.id
  policy      = data.aws_iam_policy_document.node.json
}

resource "aws_iam_instance_profile" "this" {
  name_prefix = "${var.name}-"
  role        = aws_iam_role.this.name
  tags        = local.tags
}

# ---------------------------------------------------------------------------
# Data volume: gp3, encrypted, in the subnet's AZ. It outlives instance
# replacement; the boot script never reformats an existing filesystem.
# ---------------------------------------------------------------------------

resource "aws_ebs_volume" "data" {
  availability_zone = data.aws_subnet.this.availability_zone
  type              = "gp3"
  size              = var.data_volume_size_gb
  iops              = var.data_volume_iops
  throughput        = var.data_volume_throughput
  encrypted         = true
  tags              = merge(local.tags, { Name = "${var.name}-data" })

  lifecycle {
    precondition {
      condition     = var.data_volume_iops <= 500 * var.data_volume_size_gb
      error_message = "gp3 allows at most 500 IOPS per GiB: raise data_volume_size_gb or lower data_volume_iops."
    }

    precondition {
      condition     = var.data_volume_throughput <= var.data_volume_iops / 4
      error_message = "gp3 allows at most 0.25 MiB/s per provisioned IOPS: lower data_volume_throughput or raise data_volume_iops."
    }

    precondition {
      condition     = try(tonumber(lookup(local.config, "wal.max_bytes", "2147483648")) <= var.data_volume_size_gb * 1073741824 * 0.8, true)
      error_message = "wal.max_bytes must leave room for the metadata store: keep it at or below 80% of data_volume_size_gb."
    }
  }
}

resource "aws_instance" "this" {
  ami                         = local.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = [aws_security_group.this.id]
  iam_instance_profile        = aws_iam_instance_profile.this.name
  key_name                    = var.ssh_key_name
  associate_public_ip_address = var.associate_public_ip_address
  ebs_optimized               = true

  user_data = local.user_data
  # Config changes take effect by replacing the instance; the data volume is
  # detached (after a clean stop) and re-attached to the replacement.
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    delete_on_termination = true
    tags                  = merge(local.tags, { Name = "${var.name}-root" })
  }

  tags = merge(local.tags, { Name = var.name })

  lifecycle {
    # A newer AMI behind the SSM parameter must not replace a running node.
    ignore_changes = [ami]

    precondition {
      condition     = data.aws_subnet.this.vpc_id == var.vpc_id
      error_message = "subnet_id belongs to a different VPC than vpc_id."
    }

    precondition {
      condition     = (var.strata_binary_url != null) != (var.strata_binary_s3_bucket != null || var.strata_binary_s3_key != null)
      error_message = "Set exactly one binary source: strata_binary_url, or strata_binary_s3_bucket together with strata_binary_s3_key."
    }

    precondition {
      condition     = (var.strata_binary_s3_bucket == null) == (var.strata_binary_s3_key == null)
      error_message = "strata_binary_s3_bucket and strata_binary_s3_key must be set together."
    }

    precondition {
      condition     = var.ssh_key_name == null || length(var.ssh_allowed_cidrs) > 0
      error_message = "ssh_key_name is set but ssh_allowed_cidrs is empty: list the networks that may reach port 22."
    }
  }
}

resource "aws_volume_attachment" "data" {
  device_name = local.data_device_name
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.this.id

  # Stop the instance (systemd sends Strata SIGTERM) before detaching, so the
  # WAL is never cut off mid-write when the instance is replaced.
  stop_instance_before_detaching = true
}
