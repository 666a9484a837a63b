terraform {
  # 1.5: strcontains(), check blocks and the provider features used here.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
