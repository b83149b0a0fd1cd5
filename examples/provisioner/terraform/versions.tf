terraform {
  required_version = ">= 1.6"

  # State in a Secret per cluster, Terraform's lock in a Lease; the runner passes
  # secret_suffix and namespace with -backend-config.
  backend "kubernetes" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      "berth.dev/cluster"    = var.cluster_name
      "berth.dev/managed-by" = "berth-provisioner"
    }
  }
}
