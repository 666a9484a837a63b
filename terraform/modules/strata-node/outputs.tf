output "instance_id" {
  description = "ID of the EC2 instance running Strata."
  value       = aws_instance.this.id
}

output "private_ip" {
  description = "Private IPv4 address of the instance."
  value       = aws_instance.this.private_ip
}

output "http_endpoint" {
  description = "Base URL of Strata's HTTP API inside the VPC (GET /healthz for health, GET /metrics for Prometheus)."
  value       = "http://${aws_instance.this.private_ip}:${local.service_ports.http}"
}

output "grpc_endpoint" {
  description = "host:port reserved for the RocketMQ 5 compatible gRPC API (not served yet)."
  value       = "${aws_instance.this.private_ip}:${local.service_ports.grpc}"
}

output "bucket_name" {
  description = "Name of the S3 bucket for tiered storage (the instance profile may read, write, delete and list it)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the tiered-storage S3 bucket."
  value       = aws_s3_bucket.this.arn
}

output "data_volume_id" {
  description = "ID of the EBS volume holding Strata's data_dir. Snapshot it for backups."
  value       = aws_ebs_volume.data.id
}

output "security_group_id" {
  description = "ID of the node's security group, for referencing from client security groups."
  value       = aws_security_group.this.id
}

output "iam_role_name" {
  description = "Name of the instance's IAM role, to attach further policies (e.g. AmazonSSMManagedInstanceCore)."
  value       = aws_iam_role.this.name
}

output "strata_config" {
  description = "The rendered /etc/strata/strata.toml."
  value       = local.strata_toml
}
