# A provider-free stand-in for the EKS module: the same inputs, two terraform_data
# resources, and a local-exec that fails or hangs on demand (var.behaviour).
terraform {
  backend "kubernetes" {}
}

variable "cluster_name" { type = string }
variable "kubernetes_version" { type = string }
variable "instance_type" { type = string }
variable "ip_family" { type = string }
variable "region" { type = string }
variable "vpc_id" { type = string }

variable "behaviour" {
  type    = string
  default = "succeed"
  validation {
    condition     = contains(["succeed", "fail", "slow"], var.behaviour)
    error_message = "behaviour is succeed, fail or slow"
  }
}

resource "terraform_data" "cluster" {
  input = "${var.cluster_name}/${var.kubernetes_version}/${var.region}/${var.vpc_id}"
}

resource "terraform_data" "nodes" {
  depends_on = [terraform_data.cluster]
  input      = "${var.instance_type}/${var.ip_family}"

  provisioner "local-exec" {
    # exec: the sleep itself gets terraform's stop, not a shell above it.
    command = var.behaviour == "fail" ? "echo 'failing on demand' >&2; exit 1" : (var.behaviour == "slow" ? "echo 'creating nodes slowly'; exec sleep 60" : "true")
  }
}

output "cluster_id" {
  value = terraform_data.cluster.id
}
