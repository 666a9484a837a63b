output "instance_id" {
  description = "ID of the Strata EC2 instance."
  value       = module.strata.instance_id
}

output "private_ip" {
  description = "Private IP of the Strata instance."
  value       = module.strata.private_ip
}

output "http_endpoint" {
  description = "Strata HTTP API base URL (try GET /healthz and /metrics)."
  value       = module.strata.http_endpoint
}

output "bucket_name" {
  description = "S3 bucket reserved for tiered storage."
  value       = module.strata.bucket_name
}

output "data_volume_id" {
  description = "EBS volume holding the WAL and metadata store."
  value       = module.strata.data_volume_id
}
